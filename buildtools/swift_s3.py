"""A real S3 API on loopback for the upload tests and `nox -s fleet_vm_test -- --upload-to s3`:
OpenStack Swift (Debian's python3-swift) with one disk in a folder, its account, container,
object and proxy servers, the proxy speaking S3 through Swift's `s3api` middleware with
`tempauth` keys. Swift checks presigned URLs' SigV4 and SigV2 signatures and their expiry as S3
does, so a URL that bee mangles, or one that expired, is refused for real.

`presign_put` makes a SigV4 presigned PUT URL with the standard library (what an SDK's
`generate_presigned_url("put_object", ...)` makes), for a host whose Python has no SDK.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

from buildtools import runner

# Swift runs under Debian's own Python, where python3-swift is installed.
SWIFT_PYTHON = "/usr/bin/python3"
SWIFT_S3API = Path("/usr/lib/python3/dist-packages/swift/common/middleware/s3api/s3api.py")
ACCESS_KEY, SECRET_KEY = "test:tester", "testing"  # tempauth's user, as Swift's own tests have
BUCKET = "bee"
SERVERS = ("account", "container", "object", "proxy")
START_TIMEOUT_S = 120  # four Python servers importing Swift on a loaded 2-core machine
SERVER_MAIN = (
    "import sys; from swift.common import utils, wsgi; utils.set_swift_dir(sys.argv[1]); "
    "sys.exit(wsgi.run_wsgi(sys.argv[2], sys.argv[3], verbose=True))"
)
RINGS = """import sys
from swift.common.ring import RingBuilder
for name, port in zip(("account", "container", "object"), sys.argv[2:]):
    builder = RingBuilder(4, 1, 0)
    builder.add_dev(dict(id=0, region=1, zone=1, ip="127.0.0.1", port=int(port), device="d1",
                         weight=1, meta=""))
    builder.rebalance()
    builder.get_ring().save(f"{sys.argv[1]}/{name}.ring.gz")
"""


class SwiftError(Exception):
    """Swift could not be started or asked; one line."""


def available() -> bool:
    return SWIFT_S3API.is_file() and Path(SWIFT_PYTHON).is_file()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SwiftS3:
    """Started in `base` (created); `stop()` ends its servers. Bucket `bee` exists."""

    def __init__(self, base: Path) -> None:
        self.base = base
        ports = {name: _free_port() for name in SERVERS}
        self.port = ports["proxy"]
        (base / "devices" / "d1").mkdir(parents=True)
        (base / "swift.conf").write_text(
            "[swift-hash]\nswift_hash_path_suffix = bee-test\n"
            "[storage-policy:0]\nname = one\ndefault = yes\n"
        )
        rings = [SWIFT_PYTHON, "-c", RINGS, str(base), *(str(ports[n]) for n in SERVERS[:3])]
        made = subprocess.run(rings, capture_output=True, text=True, timeout=120, check=False)
        if made.returncode != 0:
            raise SwiftError(f"swift rings: {made.stderr.strip().splitlines()[-1:]}")
        # workers = 0: one process per server, never forked, so never switched to user swift.
        common = f"[DEFAULT]\nbind_ip = 127.0.0.1\nswift_dir = {base}\nworkers = 0\n"
        for name in SERVERS[:3]:
            (base / f"{name}.conf").write_text(
                f"{common}bind_port = {ports[name]}\ndevices = {base}/devices\n"
                f"mount_check = false\n[pipeline:main]\npipeline = {name}-server\n"
                f"[app:{name}-server]\nuse = egg:swift#{name}\n"
            )
        filters = {
            "catch_errors": "catch_errors",
            "gatekeeper": "gatekeeper",
            "proxy-logging": "proxy_logging",
            # tempauth needs a cache object; no memcached behind it is fine (misses only).
            "cache": f"memcache\nmemcache_servers = 127.0.0.1:{_free_port()}",
            "s3api": "s3api",
            "tempauth": f"tempauth\nuser_{ACCESS_KEY.replace(':', '_')} = {SECRET_KEY} .admin",
        }
        (base / "proxy.conf").write_text(
            f"{common}bind_port = {self.port}\n[pipeline:main]\npipeline = catch_errors "
            "gatekeeper proxy-logging cache s3api tempauth proxy-logging proxy-server\n"
            "[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\n"
            + "".join(f"[filter:{name}]\nuse = egg:swift#{use}\n" for name, use in filters.items())
        )
        self.processes: list[subprocess.Popen] = []
        try:
            for name in SERVERS:
                argv = [SWIFT_PYTHON, "-c", SERVER_MAIN, str(base), str(base / f"{name}.conf")]
                with (base / f"{name}.log").open("wb") as log:
                    server = subprocess.Popen([*argv, f"{name}-server"], stdout=log, stderr=log)
                self.processes.append(server)
            for server, name in zip(self.processes, SERVERS, strict=True):
                self._wait(server, name, ports[name])
            self._s3("PUT", "")  # the bucket
        except BaseException:
            self.stop()
            raise

    def _wait(self, server: subprocess.Popen, name: str, port: int) -> None:
        if runner.wait_listening(server, port, START_TIMEOUT_S):
            return
        if server.poll() is not None:
            raise SwiftError(f"swift {name}-server ended: see {self.base}/{name}.log")
        raise SwiftError(f"swift {name}-server did not listen within {START_TIMEOUT_S} s")

    def _s3(self, method: str, key: str) -> bytes:
        """One S3 request of the test's own (bucket, listing, reading back), presigned too."""
        url = presign(self.endpoint, method, key, expires_s=60)
        request = urllib.request.Request(url, method=method, data=b"" if method == "PUT" else None)
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.read()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stored_keys(self) -> list[str]:
        listing = ElementTree.fromstring(self._s3("GET", ""))  # ListObjects, of our own server
        return [e.text or "" for e in listing.iter() if e.tag.endswith("}Key") or e.tag == "Key"]

    def get(self, key: str) -> bytes:
        return self._s3("GET", key)

    def stop(self) -> None:
        for server in self.processes:
            server.terminate()
        for server in self.processes:
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)


def presign_put(endpoint: str, key: str, *, expires_s: int = 3600, now: float | None = None) -> str:
    """A SigV4 presigned PUT URL for `key` in the bucket, as an SDK's
    generate_presigned_url("put_object", ...) makes it."""
    return presign(endpoint, "PUT", key, expires_s=expires_s, now=now)


def presign(
    endpoint: str,
    method: str,
    key: str,
    *,
    expires_s: int = 3600,
    bucket: str = BUCKET,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    region: str = "us-east-1",
    now: float | None = None,
) -> str:
    """A SigV4 presigned URL, path style (`/bucket/key`; key "" is the bucket), signing only the
    Host header, as SDKs do."""
    host = urlsplit(endpoint).netloc
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    scope = f"{stamp[:8]}/{region}/s3/aws4_request"
    path = f"/{quote(bucket)}" + (f"/{quote(key, safe='/-_.~')}" if key else "")
    query = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{access_key}/{scope}",
        "X-Amz-Date": stamp,
        "X-Amz-Expires": str(expires_s),
        "X-Amz-SignedHeaders": "host",
    }
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
    )
    canonical = f"{method}\n{path}\n{canonical_query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    signing = ("AWS4" + secret_key).encode()
    for part in (stamp[:8], region, "s3", "aws4_request"):
        signing = hmac.new(signing, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{endpoint.rstrip('/')}{path}?{canonical_query}&X-Amz-Signature={signature}"
