"""smartctl: parser pending."""

PARSERS: dict = {}
