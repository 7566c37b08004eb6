"""`bee check`, `bee spec` and `bee audit --spec` as an operator runs them: exit codes, one-line
errors, stdin, the verdict in the document and on the console, a spec served over http."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
import time

import pytest

from conftest import REPO, fake_tool, run_bee

QEMU_CAPTURE = REPO / "tests" / "vm" / "qemu-q35" / "bee-capture"
EXAMPLE = REPO / "docs" / "examples" / "hgx-8gpu.spec.toml"


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    path = tmp_path_factory.mktemp("audit") / "audit.json"
    proc = run_bee("audit", "--replay", str(QEMU_CAPTURE), "-o", str(path), "--no-qr")
    assert proc.returncode == 0, proc.stderr
    return path


@pytest.fixture(scope="module")
def spec(audit, tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "spec.toml"
    proc = run_bee("spec", "-o", str(path), str(audit))
    assert proc.returncode == 0, proc.stderr
    assert "checks" in proc.stderr
    return path


def test_check_accepts_exit_0_and_rejects_exit_1(audit, spec, tmp_path):
    proc = run_bee("check", str(spec), str(audit))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1].startswith("ACCEPT: ")
    assert proc.stdout.splitlines()[0].split()[:2] == ["PASS", "SYSTEM-MANUFACTURER"]
    more = tmp_path / "more.toml"
    more.write_text(
        spec.read_text().replace(
            'all = { part_number = "M393A2K43DB3-CWE" }',
            'all = { part_number = "M393A4K40DB3-CWE" }',
        )
    )
    proc = run_bee("check", str(more), str(audit))
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[-1].startswith("REJECT: 1 failed, 0 unknown")
    lines = proc.stdout.splitlines()
    (at,) = [i for i, x in enumerate(lines) if x.startswith("FAIL")]
    assert lines[at].split() == ["FAIL", "MEMORY-DIMM-PART-NUMBER"]
    assert (
        lines[at + 1].split()[:2] == ["expected:", "all:"] and "M393A4K40DB3-CWE" in lines[at + 1]
    )
    assert lines[at + 2].split()[0] == "got:" and "'M393A2K43DB3-CWE'" in lines[at + 2]
    assert lines[at + 3].split() == ["where:", "memory.slots[0]", "(DIMM", "0)"]


def test_check_json_and_stdin(audit, spec, validate_document):
    proc = run_bee("check", "--json", str(spec), "-", stdin=audit.read_text())
    assert proc.returncode == 0, proc.stderr
    verdict = json.loads(proc.stdout)
    assert (
        verdict["status"] == "ACCEPT"
        and verdict["spec_sha256"] == hashlib.sha256(spec.read_bytes()).hexdigest()
    )
    document = json.loads(audit.read_text())
    document["verdict"] = verdict
    validate_document(document)


def test_allow_unknown_waives_only_the_named_check(audit, spec, tmp_path):
    document = json.loads(audit.read_text())
    document["psu"] = None
    document["collectors"]["psu"]["status"] = "empty"
    odd = tmp_path / "nopsu.json"
    odd.write_text(json.dumps(document))
    proc = run_bee("check", str(spec), str(odd))
    assert proc.returncode == 1 and "UNKNOWN   PSU-COUNT\n" in proc.stdout
    ids = ["PSU-COUNT", "PSU-PWS-2K20A-1R-COUNT", "PSU-PWS-2K20A-1R-CAPACITY-W"]
    args = [a for i in ids for a in ("--allow-unknown", i)]
    proc = run_bee("check", *args, str(spec), str(odd))
    assert proc.returncode == 0, proc.stdout
    assert "UNKNOWN*  PSU-COUNT\n" in proc.stdout and "3 unknown waived" in proc.stdout
    proc = run_bee("check", *args[:-2], str(spec), str(odd))
    assert proc.returncode == 1
    proc = run_bee("check", *args, "--allow-unknown", "PSU-CUONT", str(spec), str(odd))
    assert proc.returncode == 0 and "--allow-unknown PSU-CUONT: no check has this id" in proc.stderr


@pytest.mark.parametrize(
    "case",
    [
        ("spec_version = 1\n[[check]\n", None, r"spec.toml: not valid TOML: .*line 2"),
        (
            'spec_version = 1\n[[check]]\nid = "A"\nselect = "cpu"\ncuont = 1\n',
            None,
            r"spec.toml:5: check\[0\]\.cuont: unknown key",
        ),
        (None, "{not json", r"audit.json:1: not JSON"),
        (None, "[1, 2]", r"audit.json: not a bee audit document"),
        (None, '{"schema_version": 7}', r"audit.json: schema_version 7"),
        (
            None,
            '{"schema_version": 1, "x": ' + "[" * 100000 + "]" * 100000 + "}",
            r"audit.json: not a usable JSON document",
        ),
        (None, '{"schema_version": 1, "x": ' + "9" * 5000 + "}", r"audit.json: not a usable"),
        (None, b"\xff\xfe".decode("latin-1"), r"audit.json: not UTF-8"),
    ],
    ids=["toml", "schema", "json", "not-object", "version", "deep", "huge-int", "not-utf8"],
)
def test_bad_files_are_one_line_exit_2(audit, spec, tmp_path, case):
    import re

    spec_text, audit_text, expected = case
    spec_path, audit_path = spec, audit
    if spec_text is not None:
        spec_path = tmp_path / "spec.toml"
        spec_path.write_text(spec_text)
    if audit_text is not None:
        audit_path = tmp_path / "audit.json"
        audit_path.write_bytes(audit_text.encode("latin-1"))
    proc = run_bee("check", str(spec_path), str(audit_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and not proc.stdout
    assert re.search(expected, proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_files_and_usage(tmp_path, spec):
    proc = run_bee("check", str(tmp_path / "nope.toml"), str(tmp_path / "a.json"))
    assert proc.returncode == 2 and "cannot read" in proc.stderr and "nope.toml" in proc.stderr
    proc = run_bee("check", str(spec), str(tmp_path / "a.json"))
    assert proc.returncode == 2 and "a.json" in proc.stderr
    proc = run_bee("check")
    assert proc.returncode == 2
    proc = run_bee("spec", str(tmp_path / "a.json"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1


def test_the_example_spec_judges_the_qemu_machine_as_another_type(audit):
    proc = run_bee("check", str(EXAMPLE), str(audit))
    assert proc.returncode == 1
    assert "no profile matches this machine" in proc.stdout


def test_audit_with_spec_puts_the_verdict_first_and_in_the_qr(tmp_path, spec, validate_document):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    payload = tmp_path / "qr-payload"
    # Stands in for qrencode to record what bee asks it to encode (the last argument).
    fake_tool(
        bindir, "qrencode", f'for a; do last=$a; done\nprintf %s "$last" > {payload}\necho "[QR]"\n'
    )
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")
    out = tmp_path / "a.json"
    proc = run_bee(
        "audit", "--replay", str(QEMU_CAPTURE), "--spec", str(spec), "-o", str(out), env=env
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("ACCEPT: ") and str(spec) in lines[0]
    assert lines[1].startswith("bee ")
    document = json.loads(out.read_text())
    validate_document(document)
    assert document["verdict"]["status"] == "ACCEPT"
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    assert f"Document sha256: {sha}" in proc.stdout
    assert payload.read_text() == f"bee ACCEPT S/N S411294X9C07713 sha256 {sha}"


def test_audit_with_an_unreadable_spec_still_writes_the_document_and_rejects(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("spec_version = 1\n[[check]]\nid = 3\n")
    out = tmp_path / "a.json"
    proc = run_bee(
        "audit", "--replay", str(QEMU_CAPTURE), "--spec", str(bad), "-o", str(out), "--no-qr"
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("REJECT: 1 failed")
    assert "SPEC" in proc.stdout.splitlines()[1] and "bad.toml:3: check[0].id" in proc.stdout
    assert json.loads(out.read_text())["verdict"]["status"] == "REJECT"


class _SpecServer(http.server.BaseHTTPRequestHandler):
    body = b""
    delay_s = 0.0
    stop = threading.Event()  # the fixture's teardown ends a delayed answer at once

    def do_GET(self):
        if self.stop.wait(self.delay_s):
            return
        if self.path != "/spec.toml":
            self.send_error(404, "no such spec")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(spec):
    handler = type(
        "Handler", (_SpecServer,), {"body": spec.read_bytes(), "stop": threading.Event()}
    )
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, handler
    handler.stop.set()
    httpd.shutdown()
    httpd.server_close()  # joins the request threads: none is left behind for later tests


def test_a_spec_served_over_http_on_the_lan(server, tmp_path, spec):
    httpd, _ = server
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    out = tmp_path / "a.json"
    proc = run_bee(
        "audit",
        "--replay",
        str(QEMU_CAPTURE),
        "--spec",
        f"{url}/spec.toml",
        "-o",
        str(out),
        "--no-qr",
    )
    assert proc.returncode == 0 and proc.stdout.startswith("ACCEPT: "), proc.stdout
    verdict = json.loads(out.read_text())["verdict"]
    assert verdict["spec"] == f"{url}/spec.toml"
    assert verdict["spec_sha256"] == hashlib.sha256(spec.read_bytes()).hexdigest()
    proc = run_bee("check", f"{url}/spec.toml", str(out))
    assert proc.returncode == 0
    # A spec that is not there: REJECT with the server's reason, the document written.
    proc = run_bee(
        "audit",
        "--replay",
        str(QEMU_CAPTURE),
        "--spec",
        f"{url}/other.toml",
        "-o",
        str(out),
        "--no-qr",
    )
    assert proc.returncode == 0 and proc.stdout.startswith("REJECT: 1 failed")
    assert "HTTP 404" in proc.stdout


def test_a_spec_server_that_does_not_answer_is_reject_within_the_deadline(server, tmp_path):
    httpd, handler = server
    handler.delay_s = 30.0  # accepts the connection, never answers in time
    out = tmp_path / "a.json"
    started = time.monotonic()
    proc = run_bee(
        "audit",
        "--replay",
        str(QEMU_CAPTURE),
        "--deadline",
        "3",
        "--spec",
        f"http://127.0.0.1:{httpd.server_address[1]}/spec.toml",
        "-o",
        str(out),
        "--no-qr",
    )
    took = time.monotonic() - started
    assert proc.returncode == 0 and proc.stdout.startswith("REJECT: 1 failed"), proc.stdout
    assert "cannot fetch" in proc.stdout
    assert json.loads(out.read_text())["verdict"]["checks"][0]["id"] == "SPEC"
    print(f"unanswered spec fetch, deadline 3 s: audit took {took:.1f} s")
