"""`bee upload` against a real nginx (Debian's, WebDAV PUT) that each test starts on loopback:
a server that works, is down, answers 500, is slow, or loses the connection mid-body; and
against a real S3 API, OpenStack Swift's (Debian's python3-swift) on loopback, with presigned
URLs that botocore signs: stored, a forged signature and an expired URL refused in words. Skips
when nginx or Swift is not installed (`.ci/run` installs nginx-light and python3-swift)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bee.upload import (
    Attempt,
    object_name,
    put_with_retries,
    s3_error,
    shown_url,
    target,
    url_from_cmdline,
)
from buildtools import swift_s3
from conftest import REPO, free_port, run_bee, wait_listening

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
needs_nginx = pytest.mark.skipif(NGINX is None, reason="needs nginx (apt install nginx-light)")
DOCUMENT = REPO / "tests" / "vm" / "qemu-q35" / "bee-capture"


class Nginx:
    """nginx -p DIR with a WebDAV folder /bee/, /broken/ (500), and /slow/ (proxied to a
    listener that never answers)."""

    def __init__(self, base: Path, blackhole_port: int) -> None:
        self.base = base
        self.root = base / "www"
        self.body_temp = base / "client_body"
        self.port = free_port()
        for folder in (self.root / "bee", self.body_temp, base / "proxy", base / "logs"):
            folder.mkdir(parents=True)
        user = "user root;" if os.geteuid() == 0 else ""  # workers must write to a 0700 tmp
        temp = " ".join(
            f"{kind}_temp_path {base}/{kind};" for kind in ("proxy", "fastcgi", "uwsgi", "scgi")
        )
        (base / "nginx.conf").write_text(
            f"""{user}
worker_processes 1;
daemon off;
pid {base}/nginx.pid;
error_log {base}/logs/error.log info;
events {{ worker_connections 64; }}
http {{
  log_format bee '$request_method $request_uri $status '
                 'ct=$http_content_type sha=$http_x_bee_sha256';
  access_log {base}/logs/access.log bee;
  client_body_temp_path {self.body_temp};
  {temp}
  server {{
    listen 127.0.0.1:{self.port};
    location /bee/ {{
      root {self.root};
      dav_methods PUT;
      create_full_put_path on;
      client_max_body_size 64m;
      client_body_timeout 10s;
    }}
    location /broken/ {{ return 500; }}
    location /slow/ {{ proxy_pass http://127.0.0.1:{blackhole_port}; proxy_read_timeout 120s; }}
  }}
}}
""",
            encoding="utf-8",
        )
        self.process = subprocess.Popen(
            [
                NGINX,
                "-p",
                str(base),
                "-c",
                str(base / "nginx.conf"),
                "-e",
                f"{base}/logs/error.log",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_listening(self.process, self.port, "nginx")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stored(self) -> dict[str, bytes]:
        return {
            p.relative_to(self.root).as_posix(): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file()
        }

    def access_log(self) -> str:
        return (self.base / "logs" / "access.log").read_text(encoding="utf-8")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def blackhole() -> Iterator[socket.socket]:
    """A listener that accepts connections and never answers: the slow upstream."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener
    listener.close()


@pytest.fixture
def nginx(tmp_path: Path, blackhole: socket.socket) -> Iterator[Nginx]:
    server = Nginx(tmp_path / "nginx", blackhole.getsockname()[1])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def audit_file(tmp_path_factory) -> Path:
    """The QEMU test server's document as bee audit writes it (replayed from its capture)."""
    out = tmp_path_factory.mktemp("node") / "bee-audit.json"
    result = run_bee("audit", "--replay", str(DOCUMENT), "--no-qr", "-o", str(out))
    assert result.returncode == 0, result.stderr
    return out


def expected_name(audit_file: Path) -> str:
    document = json.loads(audit_file.read_bytes())
    return f"{document['board']['system']['serial']}-{document['host']['boot_id']}.json"


def bee_upload(url: str, audit_file: Path, tmp_path: Path, limit: float = 10):
    status = tmp_path / "upload-status"
    start = time.monotonic()
    result = run_bee(
        "upload", url, "--file", str(audit_file), "--time-limit", str(limit),
        "--status", str(status), timeout=limit + 30,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    fields = dict(
        line.split("=", 1) for line in status.read_text(encoding="utf-8").splitlines() if line
    )
    return result, elapsed, fields


@needs_nginx
def test_put_to_an_nginx_webdav_folder_with_its_sha256(nginx, audit_file, tmp_path):
    before = audit_file.read_bytes()
    result, _, status = bee_upload(nginx.url("/bee/"), audit_file, tmp_path)
    assert result.returncode == 0, result.stderr
    name = expected_name(audit_file)
    digest = hashlib.sha256(before).hexdigest()
    assert nginx.stored() == {
        f"bee/{name}": before,
        f"bee/{name}.sha256": f"{digest}  {name}\n".encode(),
    }
    assert (
        subprocess.run(
            ["sha256sum", "-c", f"{name}.sha256"], cwd=nginx.root / "bee", check=False
        ).returncode
        == 0
    )
    assert status["result"] == "ok" and status["attempts"] == "2"  # document, then .sha256
    assert status["url"] == nginx.url(f"/bee/{name}")
    assert f"PUT /bee/{name} 201 ct=application/json sha={digest}" in nginx.access_log()
    assert result.stdout.startswith(f"bee upload: {name} sent to {nginx.url('/bee/')}")
    assert audit_file.read_bytes() == before
    # The same boot again replaces its object (nginx answers 204), nothing else appears.
    again, _, _ = bee_upload(nginx.url("/bee/"), audit_file, tmp_path)
    assert again.returncode == 0 and len(nginx.stored()) == 2
    assert f"PUT /bee/{name} 204" in nginx.access_log()


@needs_nginx
def test_a_name_template_and_a_presigned_style_url(nginx, audit_file, tmp_path):
    name = expected_name(audit_file)
    result, _, _ = bee_upload(nginx.url("/bee/rack7/node-{name}"), audit_file, tmp_path)
    assert result.returncode == 0, result.stderr
    stored = nginx.stored()
    assert set(stored) == {f"bee/rack7/node-{name}", f"bee/rack7/node-{name}.sha256"}
    assert stored[f"bee/rack7/node-{name}.sha256"].decode().endswith(f"  node-{name}\n")
    assert (
        subprocess.run(
            ["sha256sum", "-c", f"node-{name}.sha256"], cwd=nginx.root / "bee/rack7", check=False
        ).returncode
        == 0
    )
    # A query string makes it one object's full URL: nothing appended, no .sha256, and no
    # header its signature might not cover.
    signed = nginx.url("/bee/node-17.json?X-Amz-Expires=600&X-Amz-Signature=0a1b2c")
    result, _, status = bee_upload(signed, audit_file, tmp_path)
    assert result.returncode == 0, result.stderr
    assert nginx.stored()["bee/node-17.json"] == audit_file.read_bytes()
    assert "bee/node-17.json.sha256" not in nginx.stored()
    assert status["url"] == nginx.url("/bee/node-17.json?...")  # the signature is not logged
    assert "Signature" not in result.stdout + result.stderr
    line = next(x for x in nginx.access_log().splitlines() if "node-17" in x)
    assert line.startswith("PUT /bee/node-17.json?X-Amz-Expires=600&X-Amz-Signature=0a1b2c 201")
    assert " ct=- " in line  # nginx logs an absent header as -


def test_server_down_is_retried_until_the_limit_and_the_node_keeps_its_document(
    audit_file, tmp_path
):
    before = audit_file.read_bytes()
    result, elapsed, status = bee_upload(f"http://127.0.0.1:{free_port()}/bee/", audit_file,
                                         tmp_path, limit=4)  # fmt: skip
    assert result.returncode == 1
    assert status["result"] == "failed" and status["message"] == "connection refused"
    assert int(status["attempts"]) >= 3  # 1 s, 2 s backoff inside 4 s
    # Ends at its limit, not long after (a loaded 2-core builder once took 2.5 s more to start
    # and end the interpreter); a hang would take the 20 s attempt timeout or more.
    assert 2.5 < elapsed < 4 + 12
    assert "FAILED" in result.stderr and "the document stays on this node" in result.stderr
    assert audit_file.read_bytes() == before


@needs_nginx
def test_500_is_retried_and_then_given_up(nginx, audit_file, tmp_path):
    result, elapsed, status = bee_upload(nginx.url("/broken/"), audit_file, tmp_path, limit=4)
    assert result.returncode == 1
    assert status["message"] == "HTTP 500 Internal Server Error"
    assert int(status["attempts"]) >= 3
    assert nginx.access_log().count("PUT /broken/") == int(status["attempts"])
    assert elapsed < 4 + 12
    assert nginx.stored() == {}


@needs_nginx
def test_a_server_that_never_answers_does_not_hold_the_node(nginx, audit_file, tmp_path):
    result, elapsed, status = bee_upload(nginx.url("/slow/"), audit_file, tmp_path, limit=3)
    assert result.returncode == 1
    assert status["message"] in ("no answer within 3 s", "time limit of 3 s passed")
    assert status["attempts"] == "1"
    assert elapsed < 3 + 12  # not the 20 s attempt timeout


class CutOnce:
    """A TCP relay in front of nginx that passes `cut_after` bytes of the first connection and
    then resets both sides: the network failing mid-body. Later connections pass whole."""

    def __init__(self, upstream_port: int, cut_after: int) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.connections = 0
        self.cut_seen = threading.Event()
        self.release = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            first = self.connections == 1
            threading.Thread(target=self._relay, args=(client, first), daemon=True).start()

    def _relay(self, client: socket.socket, cut: bool) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        if cut:
            passed = 0
            while passed < self.cut_after:
                data = client.recv(min(4096, self.cut_after - passed))
                if not data:
                    break
                upstream.sendall(data)
                passed += len(data)
            self.cut_seen.set()
            self.release.wait(10)  # the test looks at the server while the body is half there
            for sock in (client, upstream):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                sock.close()  # linger 0: a reset, as a dropped link looks
            return
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
        _pipe(client, upstream)

    def close(self) -> None:
        self.listener.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


@needs_nginx
def test_cut_mid_body_leaves_nothing_under_the_final_name_and_the_retry_lands(
    nginx, audit_file, tmp_path
):
    body = audit_file.read_bytes()
    assert len(body) > 20_000  # past nginx's in-memory body buffer: it goes to a temp file
    relay = CutOnce(nginx.port, cut_after=len(body) // 2)
    name = expected_name(audit_file)
    seen: dict[str, object] = {}

    def look_while_half_sent() -> None:
        assert relay.cut_seen.wait(20)
        time.sleep(0.3)
        seen["stored"] = nginx.stored()
        seen["temp"] = [p.stat().st_size for p in nginx.body_temp.rglob("*") if p.is_file()]
        relay.release.set()

    watcher = threading.Thread(target=look_while_half_sent)
    watcher.start()
    try:
        result, _, status = bee_upload(
            f"http://127.0.0.1:{relay.port}/bee/", audit_file, tmp_path, limit=20
        )
    finally:
        relay.release.set()
        watcher.join()
        relay.close()
    # Half the body was in nginx's temp file, and nothing at all under the final name.
    assert seen["stored"] == {}
    assert seen["temp"] and 0 < max(seen["temp"]) < len(body)
    assert result.returncode == 0, result.stderr
    assert int(status["attempts"]) == 3  # the cut one, the document again, its .sha256
    assert nginx.stored()[f"bee/{name}"] == body
    assert not [p for p in nginx.body_temp.rglob("*") if p.is_file()]


def test_object_names():
    document = {
        "board": {"system": {"serial": "S411 294/X9"}},
        "host": {"machine_id": "3a1d", "boot_id": "9d96c82c-b3d4"},
    }
    assert object_name(document) == "S411_294_X9-9d96c82c-b3d4.json"
    assert object_name({"host": {"machine_id": "3a1d", "boot_id": "b"}}) == "3a1d-b.json"
    assert object_name({"board": {"system": {"serial": "../.."}}}) == "_..-unknown-boot.json"
    assert object_name([]) == "unknown-unknown-boot.json"


def test_targets():
    folder = target("http://10.0.0.5/bee", "a.json")
    assert (folder.url, folder.sha256_url) == (
        "http://10.0.0.5/bee/a.json",
        "http://10.0.0.5/bee/a.json.sha256",
    )
    assert target("http://10.0.0.5/bee/", "a.json").url == "http://10.0.0.5/bee/a.json"
    template = target("https://h/x/{name}", "a b.json")
    assert (template.url, template.sha256_url) == (
        "https://h/x/a%20b.json",
        "https://h/x/a%20b.json.sha256",
    )
    presigned = target("https://s3.lan/b/k.json?X-Amz-Signature=abc", "a.json")
    assert (presigned.url, presigned.sha256_url) == (
        "https://s3.lan/b/k.json?X-Amz-Signature=abc",
        None,
    )
    assert presigned.shown == "https://s3.lan/b/k.json?..."
    assert shown_url("http://user:secret@h:8080/dav/") == "http://h:8080/dav/"
    with pytest.raises(Exception, match="not an http"):
        target("ftp://h/x", "a.json")


def test_cmdline():
    line = "BOOT_IMAGE=/live/vmlinuz boot=live bee.upload=http://10.0.0.5/bee/ quiet\n"
    assert url_from_cmdline(line) == "http://10.0.0.5/bee/"
    assert url_from_cmdline("boot=live bee.upload= quiet") is None
    assert url_from_cmdline("bee.upload=a bee.upload=b") == "b"
    signed = "http://s3.lan/bee/n1.json?X-Amz-Expires=600&X-Amz-Signature=0a"
    assert url_from_cmdline(f'boot=live bee.upload="{signed}" quiet') == signed
    assert url_from_cmdline(f'boot=live "bee.upload={signed}" quiet') == signed
    assert url_from_cmdline('x="a bee.upload=http://h/" quiet') is None  # inside x's value


def test_backoff_doubles_with_jitter_and_stops_before_the_deadline():
    now = [0.0]
    waits: list[float] = []

    def put(url, body, headers, timeout):
        now[0] += 0.1
        return Attempt(status=503, message="HTTP 503", retry=True)

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    attempt, attempts = put_with_retries(
        "http://h/x", b"{}", {}, deadline=60.0, put=put, clock=lambda: now[0], sleep=sleep
    )
    assert attempt.status == 503 and attempts == len(waits) + 1
    for wait, base in zip(waits, [1, 2, 4, 8, 16, 30, 30], strict=False):
        assert 0.75 * base <= wait <= base
    assert now[0] < 60.0


def test_a_permanent_error_is_not_retried():
    calls = []

    def put(url, body, headers, timeout):
        calls.append(url)
        return Attempt(status=403, message="HTTP 403 Forbidden", retry=False)

    attempt, attempts = put_with_retries("http://h/x", b"{}", {}, deadline=1e9, put=put)
    assert (attempt.status, attempts, len(calls)) == (403, 1, 1)


def test_usage_errors(tmp_path, audit_file):
    result = run_bee("upload", "ftp://h/x", "--file", str(audit_file))
    assert result.returncode == 2 and result.stderr.startswith("bee: not an http")
    missing = run_bee("upload", "http://127.0.0.1:9/x/", "--file", str(tmp_path / "none.json"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr


# --- S3: OpenStack Swift's S3 API (Debian's python3-swift) on loopback ------------------------

try:
    import botocore.session
    from botocore.config import Config as BotocoreConfig
except ImportError:  # the test venv installs it (noxfile TEST_DEPS)
    botocore = None
needs_swift = pytest.mark.skipif(
    not swift_s3.available() or botocore is None,
    reason="needs Debian's python3-swift (apt install python3-swift) and botocore",
)


def sdk_presigned_put(server: swift_s3.SwiftS3, key: str, signature: str, expires_s: int) -> str:
    """What an operator's SDK makes: botocore's generate_presigned_url for put_object."""
    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=swift_s3.ACCESS_KEY,
        aws_secret_access_key=swift_s3.SECRET_KEY,
        config=BotocoreConfig(signature_version=signature, s3={"addressing_style": "path"}),
    )
    return client.generate_presigned_url(
        "put_object", Params={"Bucket": swift_s3.BUCKET, "Key": key}, ExpiresIn=expires_s
    )


@pytest.fixture(scope="module")
def swift(tmp_path_factory) -> Iterator[swift_s3.SwiftS3]:
    server = swift_s3.SwiftS3(tmp_path_factory.mktemp("swift"))
    yield server
    server.stop()


@needs_swift
@pytest.mark.parametrize("signature", ["s3v4", "s3"])  # SigV4, and SigV2 (which signs no type)
def test_a_presigned_put_url_stores_the_document_in_s3(swift, audit_file, tmp_path, signature):
    name = expected_name(audit_file)
    key = f"{signature}/{name}"
    url = sdk_presigned_put(swift, key, signature, 600)
    result, _, status = bee_upload(url, audit_file, tmp_path)
    assert result.returncode == 0, result.stderr
    body = swift.get(key)
    assert body == audit_file.read_bytes()
    assert key in swift.stored_keys() and f"{key}.sha256" not in swift.stored_keys()
    assert status["url"] == f"http://127.0.0.1:{swift.port}/bee/{key}?..."
    assert status["attempts"] == "1" and status["sha256"] == hashlib.sha256(body).hexdigest()
    assert "Signature" not in result.stdout + result.stderr + str(status)


@needs_swift
def test_a_bad_signature_is_refused_at_once_in_words(swift, audit_file, tmp_path):
    key = f"bad/{expected_name(audit_file)}"
    url = sdk_presigned_put(swift, key, "s3v4", 600)
    forged = url[:-1] + ("0" if url[-1] != "0" else "1")
    result, _, status = bee_upload(forged, audit_file, tmp_path)
    assert result.returncode == 1
    assert status["attempts"] == "1"  # a refusal does not change by waiting
    assert status["message"].startswith(
        "HTTP 403 Forbidden (S3 SignatureDoesNotMatch: The request signature we calculated "
        "does not match the signature you provided."
    )
    assert "FAILED" in result.stderr and "the document stays on this node" in result.stderr
    assert key not in swift.stored_keys()


@needs_swift
def test_an_expired_presigned_url_says_so(swift, audit_file, tmp_path):
    key = f"expired/{expected_name(audit_file)}"
    url = sdk_presigned_put(swift, key, "s3v4", 1)
    time.sleep(2.1)
    result, _, status = bee_upload(url, audit_file, tmp_path)
    assert result.returncode == 1 and status["attempts"] == "1"
    assert status["message"] == "HTTP 403 Forbidden (S3 AccessDenied: Request has expired)"
    assert "Request has expired" in result.stderr
    assert key not in swift.stored_keys()


@needs_swift
def test_the_stdlib_presigned_url_of_the_fleet_vm_test_is_one_swift_accepts(
    swift, audit_file, tmp_path
):
    """buildtools.swift_s3.presign_put (fleet_vm_test signs its guest's URL with it): stored
    when right, refused when the key or the time differs from what was signed."""
    key = "stdlib/node-1.json"
    url = swift_s3.presign_put(swift.endpoint, key, expires_s=600)
    result, _, status = bee_upload(url, audit_file, tmp_path)
    assert result.returncode == 0, result.stderr
    assert swift.get(key) == audit_file.read_bytes()
    moved = url.replace("node-1.json", "node-2.json")
    _, _, status = bee_upload(moved, audit_file, tmp_path)
    assert "SignatureDoesNotMatch" in status["message"]
    old = swift_s3.presign_put(swift.endpoint, key, expires_s=60, now=time.time() - 3600)
    _, _, status = bee_upload(old, audit_file, tmp_path)
    assert swift.stored_keys().count(key) == 1 and "stdlib/node-2.json" not in swift.stored_keys()
    assert status["message"] == "HTTP 403 Forbidden (S3 AccessDenied: Request has expired)"


def test_s3_error_answers_are_read_in_linear_time_and_never_raise():
    assert s3_error(b"<Error><Code>AccessDenied</Code><Message>A &amp; B\n</Message></Error>") == (
        "S3 AccessDenied: A & B"
    )
    assert s3_error(b"<Error><Code>NoSuchBucket</Code></Error>") == "S3 NoSuchBucket"
    for junk in (b"", b"<html>500</html>", b"<Error><Code>", b"\xff" * 70000, b"<Error>" * 9999):
        assert s3_error(junk) is None
    assert len(s3_error(b"<Error><Code>X</Code><Message>" + b"m" * 9000 + b"</Message>")) < 210
