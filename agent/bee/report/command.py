"""`bee report DIR|FILES... [-o report.html] [--csv FILE] [--spec SPEC]`."""

from __future__ import annotations

import sys
from pathlib import Path

from bee.output import OutputError, write_document
from bee.report import html, text
from bee.report.compare import analyse
from bee.report.load import load
from bee.report.verdict import spec_evaluator


def run(paths: list[str], *, output: str, csv_path: str | None, spec: str | None) -> int:
    """0: the report is written; 1: no audit could be read, or a file could not be written.
    A bad --spec raises SpecError (a usage error) before any file is read."""
    evaluate = spec_evaluator(spec) if spec else None
    fleet = analyse(load(paths, evaluate))
    page = html.render(fleet)
    to_stdout = output == "-"
    human = sys.stderr if to_stdout else sys.stdout
    status = 0
    written = []
    try:
        if to_stdout:
            sys.stdout.write(page)
        else:
            write_document(Path(output), page.encode("utf-8"))
            written.append(f"Report: {output}")
        if csv_path:
            write_document(Path(csv_path), text.csv_text(fleet).encode("utf-8"))
            written.append(f"CSV: {csv_path}")
    except OutputError as exc:
        print(f"bee: {exc}", file=sys.stderr)
        status = 1
    human.write(text.summary(fleet))
    if written:
        human.write("   ".join(written) + "\n")
    if not fleet.nodes:
        print("bee: no bee audit among the files given", file=sys.stderr)
        status = 1
    return status
