"""Shared test helpers: where things are, running bee as the image runs it, the schema."""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from bee.capture import RecordingRunner, ReplayRunner
from bee.probe import Probe
from bee.runner import RC_TIMEOUT

# No timed assertions in tests: Hypothesis's per-example deadline (200 ms) and its "too slow"
# health check failed replay tests when CI ran on a loaded machine. But every property is
# bounded (issue 20: a parser that hangs must fail a "never raises" property): 30 s per
# example, where one takes milliseconds, is a hang guard, not a timing. A test that bounds time
# on purpose sets its own deadline.
settings.register_profile("bee", deadline=30_000, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("bee")

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
    """Run the agent as the image does: `python3 -S -E -m bee` from agent/ (stdlib only).

    A live `bee audit` here gets `--lldp 0` unless the test names `--lldp`: the default 31 s
    window on the test host's real ports would make each such test wait half a minute for
    nothing (LLDP has its own tests, across a veth pair)."""
    if args[:1] == ("audit",) and "--lldp" not in args and "--replay" not in args:
        args = (*args, "--lldp", "0")
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


@functools.cache
def section_validator(section: str):
    """The validator of one section's schema, agent/bee/schema/<section>.schema.json."""
    from jsonschema import Draft202012Validator

    schema = json.loads((SCHEMA_DIR / f"{section}.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def assert_section_valid(section: str, model: object) -> None:
    """A model (as serialised into the document) matches its section's schema."""
    from bee.serialize import to_jsonable

    errors = list(section_validator(section).iter_errors(to_jsonable(model)))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]


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


def write_capture(
    directory: Path,
    commands: list[tuple],
    files: dict[str, str] | None = None,
    dirs: dict[str, list[str] | None] | None = None,
    links: dict[str, str] | None = None,
    *,
    duration_s: float = 0.01,
) -> Path:
    """A bee-capture/1 directory for replay tests.

    commands: (argv, exit status, stdout) or (argv, exit status, stdout, stderr); exit status
    124 marks the command as timed out, as the runner reports a killed tool.
    """
    (directory / "commands").mkdir(parents=True)
    entries = []
    for number, (argv, returncode, stdout, *rest) in enumerate(commands):
        stderr = rest[0] if rest else ""
        for stream, text in (("stdout", stdout), ("stderr", stderr)):
            (directory / f"commands/{number:03d}.{stream}").write_text(text, encoding="utf-8")
        entries.append(
            {
                "argv": list(argv),
                "returncode": returncode,
                "duration_s": duration_s,
                "timed_out": returncode == RC_TIMEOUT,
                "stdout": f"commands/{number:03d}.stdout",
                "stderr": f"commands/{number:03d}.stderr",
            }
        )
    file_map = {}
    for path, text in (files or {}).items():
        target = directory / ("fs" + path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        file_map[path] = "fs" + path
    manifest = {
        "format": "bee-capture/1",
        "commands": entries,
        "files": file_map,
        "dirs": dirs or {},
        "links": links or {},
    }
    (directory / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return directory


def probe_over(directory: Path, name: str) -> tuple[Probe, RecordingRunner]:
    """A collector's probe over a capture directory, recording what the collector asked."""
    recorder = RecordingRunner(ReplayRunner(directory))
    return Probe(recorder, name), recorder


def mangle(data, text: str) -> str:
    """Real output damaged as tools and transfers damage it: a few lines dropped, duplicated or
    cut short, and maybe the end missing. `data` is Hypothesis' `st.data()`."""
    lines = text.splitlines(keepends=True)
    if lines:
        edits = data.draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["drop", "dup", "cut"]),
                    st.integers(0, len(lines) - 1),
                    st.integers(0, 80),
                ),
                min_size=1,
                max_size=6,
            )
        )
        for edit, drawn, cut in edits:
            index = min(drawn, len(lines) - 1)
            if edit == "drop":
                del lines[index]
            elif edit == "dup":
                lines.insert(index, lines[index])
            else:
                lines[index] = lines[index][:cut]
            if not lines:
                break
    damaged = "".join(lines)
    if data.draw(st.booleans()):
        damaged = damaged[: data.draw(st.integers(0, len(damaged)))]
    return damaged


def is_json_object(text: str) -> bool:
    """Whether `text` is a JSON object, as the tools' `-j`/`-o json` output is (a parser given
    anything else must report an error)."""
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the server started next binds it)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_listening(process: subprocess.Popen, port: int, what: str, timeout: float = 10) -> None:
    """Until a server the test started accepts on 127.0.0.1:port; its stderr if it ended."""
    from buildtools import runner

    if runner.wait_listening(process, port, timeout):
        return
    if process.poll() is not None:
        raise RuntimeError(f"{what} ended: {process.stderr.read() if process.stderr else ''!r}")
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def build_deb(pool: Path, name: str, version: str, files: dict[str, Path] | None = None) -> None:
    """A real .deb (dpkg-deb --build) in `pool`: a README, plus `files` ({path in the package:
    file to copy there}, modes kept)."""
    root = pool / f"{name}_{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr" / "share" / "doc" / name).mkdir(parents=True)
    (root / "usr" / "share" / "doc" / name / "README").write_text(f"{name} {version}\n")
    for inside, source in (files or {}).items():
        (root / inside).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, root / inside)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: bee tests <bee@example.invalid>\nDescription: test package\n"
    )
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(pool)],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(root)


def local_archive(
    base: Path,
    packages: dict[str, str],
    *,
    suite: str = "bookworm",
    files: dict[str, dict[str, Path]] | None = None,
) -> Path:
    """A minimal Debian archive for a `file:` mirror: dists/SUITE/main/binary-{amd64,all}/
    Packages + Release, the packages built by build_deb (`files`: per package name)."""
    pool = base / "pool"
    pool.mkdir(parents=True)
    for name, version in packages.items():
        build_deb(pool, name, version, (files or {}).get(name))
    index = subprocess.run(
        ["dpkg-scanpackages", "--multiversion", "pool"],
        cwd=base,
        check=True,
        capture_output=True,
    ).stdout
    dist = base / "dists" / suite
    release_lines = []
    for arch in ("amd64", "all"):
        folder = dist / "main" / f"binary-{arch}"
        folder.mkdir(parents=True)
        (folder / "Packages").write_bytes(index)
        (folder / "Packages.gz").write_bytes(gzip.compress(index))
        for file in ("Packages", "Packages.gz"):
            data = (folder / file).read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            release_lines.append(f" {digest} {len(data)} main/binary-{arch}/{file}")
    (dist / "Release").write_text(
        f"Suite: {suite}\nCodename: {suite}\nArchitectures: amd64 all\nComponents: main\n"
        "SHA256:\n" + "\n".join(release_lines) + "\n"
    )
    return base
