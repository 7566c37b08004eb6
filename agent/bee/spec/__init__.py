"""Acceptance against a hardware spec: `bee spec`, `bee check`, `bee audit --spec`.

- `values`: units and versions, the comparisons a rule makes.
- `load`: the TOML spec file into rules, with one-line errors naming file, line and key.
- `evaluate`: rules against an audit document, into a verdict (PASS / FAIL / UNKNOWN per check).
- `generate`: a spec from one or many known-good audits.
- `source`: reading a spec from a path or an http URL within a deadline.
- `report`: the verdict as a table and as the console summary's first lines.
"""
