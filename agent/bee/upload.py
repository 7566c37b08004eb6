"""`bee upload [URL]`: an HTTP PUT of the audit document to a server the operator already runs
(nginx with WebDAV PUT, an S3-compatible presigned URL), retried with backoff inside a time
limit. At boot `bee-upload.service` runs it after the audit with the URL from `bee.upload=` on
the kernel command line (or baked into /etc/bee/upload-url); nothing waits for it.

Where the document goes, from the URL given:
- it holds `{name}`: that is replaced by the name (`http://10.0.0.5/bee/{name}`);
- it has a query string and no `{name}`: it is one object's full URL, used exactly as given (a
  presigned URL's signature covers its path, so nothing may be appended);
- otherwise it is a folder: the name is appended (`http://10.0.0.5/bee/` + name).
The name is `<system serial or machine id>-<boot id>.json`, so each boot of each machine gets
its own object and a re-upload of the same boot replaces it.

Integrity: every PUT carries the document's sha256 in `X-Bee-Sha256` (a server may log it), and
for folder and `{name}` URLs a second PUT writes `<name>.sha256` beside it, in `sha256sum` form,
once the document is stored; `bee report` checks it. A presigned URL names one object only, so
it gets no `.sha256` (S3 keeps its own checksum). The node's document is only read, never moved.
"""

from __future__ import annotations

import base64
import hashlib
import html
import http.client
import json
import posixpath
import random
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from bee.document import system_serial, text
from bee.output import OutputError, write_atomic
from bee.tools.boot import kernel_words

CMDLINE = Path("/proc/cmdline")
BAKED_URL = Path("/etc/bee/upload-url")
CMDLINE_KEY = "bee.upload="
DEFAULT_TIME_LIMIT_S = 60.0
ATTEMPT_TIMEOUT_S = 20.0  # one connection: connect, send, answer
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
OK = (200, 201, 204)
# Worth another try: the server is busy or broken for now. Anything else (403 expired URL,
# 405 no PUT, 409 missing folder, 413 too large) will not change by waiting.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


class UploadError(Exception):
    """A URL or document that cannot be uploaded at all; one line."""


class TimeLimit(Exception):
    """The upload's time limit passed inside a blocking call."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    url: str  # where the document goes
    sha256_url: str | None  # where its .sha256 goes, or None (presigned URL)
    shown: str  # the URL for logs and the motd: no password, no query string (a signature)


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    status: int | None  # the HTTP status, or None when no answer came
    message: str
    retry: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    ok: bool
    message: str
    attempts: int
    seconds: float
    name: str
    sha256: str
    shown: str


def url_from_cmdline(cmdline: str) -> str | None:
    """The value of the last `bee.upload=` on the kernel command line. The kernel takes both
    `bee.upload="URL"` and `"bee.upload=URL"` (GRUB needs quotes around a URL with `&`) and
    leaves the quotes in /proc/cmdline."""
    found = None
    for word in kernel_words(cmdline):
        if word.startswith(CMDLINE_KEY):
            found = word[len(CMDLINE_KEY) :] or None
    return found


def configured_url(cmdline: Path = CMDLINE, baked: Path = BAKED_URL) -> str | None:
    """bee.upload= on the kernel command line, else the URL baked into the image."""
    for read in (lambda: url_from_cmdline(cmdline.read_text()), lambda: baked.read_text().strip()):
        try:
            url = read()
        except (OSError, UnicodeDecodeError):
            continue
        if url:
            return url
    return None


def _safe(value: str) -> str:
    cleaned = "".join(c if c in NAME_CHARS else "_" for c in value).lstrip(".")
    return cleaned[:96] or "unknown"


def object_name(document: object) -> str:
    """`<system serial or machine id>-<boot id>.json`, in characters safe in any URL path."""
    who = system_serial(document) or text(document, "host", "machine_id") or "unknown"
    boot = text(document, "host", "boot_id") or "unknown-boot"
    return f"{_safe(who)}-{_safe(boot)}.json"


def target(url: str, name: str) -> Target:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UploadError(f"not an http:// or https:// URL: {shown_url(url)}")
    if "{name}" in url:
        put = url.replace("{name}", quote(name))
        sidecar = None if parts.query else url.replace("{name}", quote(name + ".sha256"))
    elif parts.query:
        put, sidecar = url, None
    else:
        put = url.rstrip("/") + "/" + quote(name)
        sidecar = put + ".sha256"
    return Target(url=put, sha256_url=sidecar, shown=shown_url(put))


def shown_url(url: str) -> str:
    """The URL without user:password and with the query string elided."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(unparsable URL)"
    query = "?..." if parts.query else ""
    return f"{parts.scheme}://{host}{port}{parts.path}{query}"


def put_once(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Attempt:
    """One PUT. Every failure is an Attempt saying whether to try again, never an exception
    (except TimeLimit, from the caller's alarm)."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    headers = dict(headers)
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    connection: http.client.HTTPConnection
    try:
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=timeout_s
            )
        else:
            connection = http.client.HTTPConnection(
                parts.hostname or "", parts.port, timeout=timeout_s
            )
    except ValueError as exc:  # a port that is not a number
        return Attempt(status=None, message=f"bad URL: {exc}", retry=False)
    try:
        connection.request("PUT", path, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read(64 * 1024)  # bounded
        reason = f"HTTP {response.status} {response.reason}".strip()
        if response.status in OK:
            return Attempt(status=response.status, message=reason, retry=False)
        why = s3_error(answer)
        if why:
            reason += f" ({why})"
        return Attempt(
            status=response.status, message=reason, retry=response.status in RETRY_STATUSES
        )
    except TimeoutError:
        return Attempt(status=None, message=f"no answer within {timeout_s:.0f} s", retry=True)
    except ConnectionRefusedError:
        return Attempt(status=None, message="connection refused", retry=True)
    except http.client.RemoteDisconnected:
        message = "the server closed the connection without an answer"
        return Attempt(status=None, message=message, retry=True)
    except (ConnectionResetError, BrokenPipeError):
        return Attempt(status=None, message="the connection was cut mid-transfer", retry=True)
    except socket.gaierror as exc:
        return Attempt(status=None, message=f"cannot resolve the host: {exc.strerror}", retry=True)
    except ssl.SSLCertVerificationError as exc:
        return Attempt(status=None, message=f"TLS: {exc.verify_message}", retry=False)
    except (OSError, http.client.HTTPException) as exc:
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return Attempt(status=None, message=detail, retry=True)
    finally:
        connection.close()


def s3_error(body: bytes) -> str | None:
    """`S3 Code: Message` from an S3 error answer (`<Error><Code>...</Code><Message>...`): why an
    S3-compatible store refused a presigned URL (SignatureDoesNotMatch, AccessDenied: Request has
    expired). Only those two elements: the rest may echo the string that was signed."""
    text = body[:16384].decode("utf-8", errors="replace")
    if "<Error>" not in text:
        return None
    code, message = _element(text, "Code"), _element(text, "Message")
    if not code:
        return None
    return f"S3 {code}: {message}" if message else f"S3 {code}"


def _element(text: str, tag: str) -> str:
    """The first <tag>value</tag>, unescaped, on one line of printable characters, at most 200."""
    start = text.find(f"<{tag}>")
    if start < 0:
        return ""
    start += len(tag) + 2
    end = text.find(f"</{tag}>", start)
    if end < 0:
        return ""
    value = html.unescape(text[start:end])
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())[:200]


Put = Callable[[str, bytes, dict[str, str], float], Attempt]


def put_with_retries(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    deadline: float,
    put: Put = put_once,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    jitter: random.Random | None = None,
) -> tuple[Attempt, int]:
    """PUT until it succeeds, fails for good, or the next try would end past the deadline.
    Backoff doubles from 1 s to 30 s, each wait between 75% and 100% of it, so a rack of nodes
    booted together does not knock on the server in step."""
    jitter = jitter or random.Random()
    backoff = FIRST_BACKOFF_S
    attempts = 0
    while True:
        attempts += 1
        remaining = deadline - clock()
        if remaining <= 0:
            return Attempt(status=None, message="time limit passed", retry=False), attempts - 1
        attempt = put(url, body, headers, min(ATTEMPT_TIMEOUT_S, remaining))
        if attempt.status in OK or not attempt.retry:
            return attempt, attempts
        wait = backoff * jitter.uniform(0.75, 1.0)
        if clock() + wait >= deadline:
            return attempt, attempts
        sleep(wait)
        backoff = min(backoff * 2, MAX_BACKOFF_S)


@contextmanager
def hard_deadline(seconds: float) -> Iterator[None]:
    """Raise TimeLimit in whatever the main thread is blocked in once `seconds` pass. Socket
    timeouts bound each read, but a server trickling one byte at a time would reset them."""
    try:
        previous = signal.signal(signal.SIGALRM, _alarm)
    except ValueError:  # not the main thread: the socket timeouts are the bound
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _alarm(signum: int, frame: object) -> None:
    raise TimeLimit


def upload(
    document_path: Path,
    url: str,
    *,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    put: Put = put_once,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Send the document (its bytes exactly as on disk) and then its .sha256."""
    start = clock()
    try:
        body = document_path.read_bytes()
    except OSError as exc:
        raise UploadError(f"cannot read {document_path}: {exc.strerror or exc}") from None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise UploadError(f"{document_path} is not a JSON audit document") from None
    name = object_name(document)
    where = target(url, name)
    digest = hashlib.sha256(body).hexdigest()
    deadline = start + time_limit_s
    headers = {"Content-Length": str(len(body)), "X-Bee-Sha256": digest}
    if where.sha256_url is not None:
        # Not on a presigned URL: a header its signature did not cover can void it (SigV2).
        headers["Content-Type"] = "application/json"

    def outcome(ok: bool, message: str, attempts: int) -> Outcome:
        return Outcome(
            ok=ok,
            message=message,
            attempts=attempts,
            seconds=round(clock() - start, 3),
            name=name,
            sha256=digest,
            shown=where.shown,
        )

    calls = 0

    def counted(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Attempt:
        nonlocal calls  # counted here: the alarm can end put_with_retries before it returns
        calls += 1
        return put(url, body, headers, timeout_s)

    try:
        with hard_deadline(deadline - clock()):
            result, _ = put_with_retries(
                where.url, body, headers, deadline=deadline, put=counted, clock=clock, sleep=sleep
            )
            if result.status not in OK:
                return outcome(False, result.message, calls)
            if where.sha256_url is None:
                return outcome(True, result.message, calls)
            # sha256sum -c in that folder looks for the object's own name (a template may
            # have put a prefix before {name}).
            stored = posixpath.basename(unquote(urlsplit(where.url).path)) or name
            line = f"{digest}  {stored}\n".encode()
            side_headers = {"Content-Length": str(len(line)), "Content-Type": "text/plain"}
            side, _ = put_with_retries(
                where.sha256_url,
                line,
                side_headers,
                deadline=deadline,
                put=counted,
                clock=clock,
                sleep=sleep,
            )
    except TimeLimit:
        return outcome(False, f"time limit of {time_limit_s:.0f} s passed", calls)
    if side.status not in OK:
        # The document is there and whole (the server answered for all of it); only the check
        # file is missing, and bee report reads a document without one.
        return outcome(True, f"{result.message}; {name}.sha256 not written: {side.message}", calls)
    return outcome(True, result.message, calls)


def status_text(outcome: Outcome) -> str:
    """/run/bee/upload-status, for the motd: key=value lines like /run/bee/audit-status."""
    fields = {
        "result": "ok" if outcome.ok else "failed",
        "url": outcome.shown,
        "name": outcome.name,
        "sha256": outcome.sha256,
        "attempts": str(outcome.attempts),
        "seconds": f"{outcome.seconds:.0f}",
        "message": outcome.message,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return "".join(f"{k}={v.replace(chr(10), ' ')}\n" for k, v in fields.items())


def summary_line(outcome: Outcome) -> str:
    if outcome.ok:
        return (
            f"bee upload: {outcome.name} sent to {outcome.shown} ({outcome.message}, "
            f"{outcome.attempts} attempt{'s' if outcome.attempts != 1 else ''}, "
            f"{outcome.seconds:.1f} s, sha256 {outcome.sha256})"
        )
    return (
        f"bee upload: FAILED to send {outcome.name} to {outcome.shown} after "
        f"{outcome.attempts} attempt{'s' if outcome.attempts != 1 else ''} in "
        f"{outcome.seconds:.1f} s: {outcome.message}; the document stays on this node "
        "(retry: bee upload)"
    )


def run(url: str | None, document_path: Path, time_limit_s: float, status: Path | None) -> int:
    """`bee upload`: 0 sent, 1 not sent (the reason on stderr and in the status file). A missing
    or malformed URL raises UploadError before anything is read or sent (a usage error)."""
    url = url or configured_url()
    if not url:
        raise UploadError(f"no URL: give one, boot with {CMDLINE_KEY}URL or write {BAKED_URL}")
    target(url, "check.json")  # refuse a malformed URL as a usage error, before any I/O
    try:
        outcome = upload(document_path, url, time_limit_s=time_limit_s)
    except UploadError as exc:
        outcome = Outcome(
            ok=False,
            message=str(exc),
            attempts=0,
            seconds=0.0,
            name="-",
            sha256="-",
            shown=shown_url(url),
        )
    line = summary_line(outcome)
    print(line, file=sys.stdout if outcome.ok else sys.stderr)
    if status is not None:
        try:
            write_atomic(status, status_text(outcome).encode("utf-8"))
        except OutputError as exc:
            print(f"bee: {exc}", file=sys.stderr)
    return 0 if outcome.ok else 1
