"""Where a spec comes from: a file, or an http(s) URL on the LAN (the `bee.spec=` boot option).

A fetch never raises and never outlives its deadline: it runs in a daemon thread, retrying
while the network is not up yet (DHCP may still be running when the boot audit starts), and the
caller waits for it only until the deadline.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

MAX_SPEC_BYTES = 1 << 20
RETRY_S = 2.0


@dataclass(slots=True)
class Fetched:
    data: bytes | None = None
    error: str | None = None


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def read_file(path: str) -> Fetched:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        return Fetched(error=f"cannot read {path}: {exc.strerror or exc}")
    if len(data) > MAX_SPEC_BYTES:
        return Fetched(error=f"{path}: larger than {MAX_SPEC_BYTES} bytes")
    return Fetched(data=data)


def fetch_url(url: str, end: float) -> Fetched:
    """GET the URL, retrying network errors until `end` (time.monotonic()); HTTP errors and
    oversized answers end it at once."""
    last = "no attempt"
    while True:
        remaining = end - time.monotonic()
        if remaining <= 0:
            return Fetched(error=f"cannot fetch {url}: {last} (gave up at the deadline)")
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "bee"})
            with urllib.request.urlopen(request, timeout=max(0.5, min(remaining, 10.0))) as answer:
                data = answer.read(MAX_SPEC_BYTES + 1)
        except urllib.error.HTTPError as exc:
            return Fetched(error=f"cannot fetch {url}: HTTP {exc.code} {exc.reason}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            last = str(reason).splitlines()[0][:200] if str(reason) else type(exc).__name__
            if isinstance(exc, ValueError):
                return Fetched(error=f"cannot fetch {url}: {last}")
            time.sleep(min(RETRY_S, max(0.0, end - time.monotonic())))
            continue
        except Exception as exc:  # http.client raises its own kinds on a broken server
            return Fetched(error=f"cannot fetch {url}: {type(exc).__name__}: {exc}"[:300])
        if len(data) > MAX_SPEC_BYTES:
            return Fetched(error=f"cannot fetch {url}: larger than {MAX_SPEC_BYTES} bytes")
        return Fetched(data=data)


class Pending:
    """A spec being read in the background while the audit runs."""

    def __init__(self, source: str, deadline_s: float) -> None:
        self.source = source
        self.end = time.monotonic() + deadline_s
        self.result = Fetched()
        self._thread: threading.Thread | None = None
        if is_url(source):
            self._thread = threading.Thread(target=self._fetch, name="bee-spec", daemon=True)
            self._thread.start()
        else:
            self.result = read_file(source)

    def _fetch(self) -> None:
        self.result = fetch_url(self.source, self.end)

    def wait(self) -> Fetched:
        if self._thread is not None:
            self._thread.join(max(0.0, self.end - time.monotonic()) + 1.0)
            if self._thread.is_alive():
                return Fetched(error=f"cannot fetch {self.source}: not done by the deadline")
        return self.result
