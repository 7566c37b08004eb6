"""Shared test helpers: where things are, running bee as the image runs it, the schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
AGENT_DIR = REPO / "agent"
SCHEMA_DIR = AGENT_DIR / "bee" / "schema"
FIXTURES = REPO / "fixtures"
REALWORLD = REPO.parent / "shared" / "realworld"


def run_bee(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    stdin: str | None = None,
    preexec_fn=None,
) -> subprocess.CompletedProcess[str]:
    """Run the agent as the image does: `python3 -S -E -m bee` from agent/ (stdlib only)."""
    return subprocess.run(
        [sys.executable, "-S", "-E", "-m", "bee", *args],
        cwd=AGENT_DIR,
        env=env if env is not None else dict(os.environ),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,
        check=False,
    )


def _schema_validator():
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((path.name, Resource.from_contents(contents)))
    registry = Registry().with_resources(resources)
    root = json.loads((SCHEMA_DIR / "audit.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(root)
    return Draft202012Validator(root, registry=registry)


@pytest.fixture(scope="session")
def validate_document():
    validator = _schema_validator()

    def validate(document: dict) -> None:
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        if errors:
            lines = [f"{list(e.absolute_path)}: {e.message}" for e in errors[:20]]
            raise AssertionError("document does not match the schema:\n" + "\n".join(lines))

    return validate


def fake_tool(bindir: Path, name: str, script: str) -> Path:
    """A stand-in executable on PATH for tests of how bee treats badly behaved tools."""
    path = bindir / name
    path.write_text("#!/bin/sh\n" + script, encoding="utf-8")
    path.chmod(0o755)
    return path


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
