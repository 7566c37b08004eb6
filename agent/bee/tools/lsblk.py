"""lsblk: parser pending."""

PARSERS: dict = {}
