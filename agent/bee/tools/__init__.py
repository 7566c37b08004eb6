"""One module per tool bee reads, named after the binary. Each module has pure parsers
(`parse*(text) -> model`, listed in its `PARSERS` for `bee parse`) and thin collectors
(`collect*(probe) -> model | None`) that run the tool through the probe."""
