"""nvme: parser pending."""

PARSERS: dict = {}
