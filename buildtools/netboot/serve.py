"""Serving dist/netboot/ to a VM: an HTTP server on 127.0.0.1 that counts what it sends, and
the bridge QEMU's user network runs for each guest connection.

A VM test keeps QEMU's user network restricted (`restrict=on`: the guest reaches nothing
outside). `guestfwd=tcp:10.0.2.100:80-cmd:python3 -m buildtools.netboot.serve bridge PORT`
makes 10.0.2.100:80 inside the guest a pipe to this server: QEMU starts the bridge for each TCP
connection the guest opens there, with the connection on the bridge's stdin and stdout.
"""

from __future__ import annotations

import http.server
import os
import selectors
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

GUEST_ADDRESS = "10.0.2.100"  # inside QEMU's first user network (10.0.2.0/24)


@dataclass(slots=True)
class Served:
    """What the server sent: bytes and requests per path, and the status of each request."""

    bytes_by_path: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_by_path.values())


class NetbootServer:
    """`with NetbootServer(dir) as server:` serves `dir` on 127.0.0.1:<server.port>."""

    def __init__(self, directory: Path) -> None:
        self.served = Served()
        served = self.served

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
                super().__init__(*args, directory=str(directory), **kwargs)

            def copyfile(self, source, outputfile) -> None:  # type: ignore[no-untyped-def]
                sent = 0
                while chunk := source.read(1 << 16):
                    outputfile.write(chunk)
                    sent += len(chunk)
                with served.lock:
                    served.bytes_by_path[self.path] = served.bytes_by_path.get(self.path, 0) + sent

            def send_response(self, code, message=None) -> None:  # type: ignore[no-untyped-def]
                with served.lock:
                    served.requests.append((self.path, int(code)))
                super().send_response(code, message)

            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> NetbootServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def guestfwd(self) -> str:
        """The netdev option that puts this server at http://10.0.2.100/ in the guest."""
        # The file itself: QEMU runs it from its own working directory, and `bridge` needs only
        # the standard library. QEMU splits options on commas; paths here have none.
        command = f"{sys.executable} {Path(__file__).resolve()} bridge {self.port}"
        return f"guestfwd=tcp:{GUEST_ADDRESS}:80-cmd:{command}"


def bridge(port: int) -> int:
    """Copy stdin to 127.0.0.1:port and the answer to stdout until both sides are done."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.settimeout(None)
        selector = selectors.DefaultSelector()
        selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "in")
        selector.register(conn, selectors.EVENT_READ, "conn")
        open_ends = 2
        while open_ends:
            for key, _mask in selector.select():
                if key.data == "in":
                    data = os.read(sys.stdin.fileno(), 1 << 16)
                    if not data:
                        selector.unregister(sys.stdin.fileno())
                        conn.shutdown(socket.SHUT_WR)
                        open_ends -= 1
                    else:
                        conn.sendall(data)
                else:
                    data = conn.recv(1 << 16)
                    if not data:
                        selector.unregister(conn)
                        open_ends -= 1
                        open_ends = 0  # the server answered in full: the guest has it all
                    else:
                        view = memoryview(data)
                        while view:
                            view = view[os.write(sys.stdout.fileno(), view) :]
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "bridge" and sys.argv[2].isdigit():
        sys.exit(bridge(int(sys.argv[2])))
    print("usage: python3 -m buildtools.netboot.serve bridge PORT", file=sys.stderr)
    sys.exit(2)
