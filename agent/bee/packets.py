"""Passive raw-frame listening on several interfaces at once, for a bounded time (LLDP).

One AF_PACKET socket per interface, bound to it and to one ethertype, all waited on together,
so that nine ports cost one window, not nine (lshca#81: port by port took 3m50s). Each socket
joins the LLDP multicast groups (PACKET_ADD_MEMBERSHIP, dropped when the socket closes) instead
of putting the port in promiscuous mode. Frames the host itself sends are skipped.

The text form (`frames_to_text`) is one line per frame, `IFNAME HEX`: what a capture stores
and what `bee parse lldp` reads.
"""

from __future__ import annotations

import errno
import selectors
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import socket

ETH_P_LLDP = 0x88CC
# The three LLDP destinations of IEEE 802.1AB: nearest bridge, non-TPMR bridge, customer bridge.
LLDP_MULTICAST = (
    bytes.fromhex("0180c200000e"),
    bytes.fromhex("0180c2000003"),
    bytes.fromhex("0180c2000000"),
)
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_MULTICAST = 0
PACKET_OUTGOING = 4
MAX_FRAME_BYTES = 9216
MAX_FRAMES_PER_INTERFACE = 64  # a switch sends one per 30 s; more is a storm, not information
POLL_STEP_S = 0.2


@dataclass(frozen=True, slots=True, kw_only=True)
class Frames:
    interfaces: tuple[str, ...]  # asked to listen on
    ethertype: int
    seconds: float  # the window asked for
    duration_s: float  # how long it listened (less when the deadline or an abort cut it)
    frames: list[tuple[str, bytes]] = field(default_factory=list)  # (interface, frame)
    errors: list[str] = field(default_factory=list)  # "eth3: cannot listen: Network is down"
    listened: tuple[str, ...] = ()  # the interfaces whose socket was open for the window


def frames_to_text(frames: Sequence[tuple[str, bytes]]) -> str:
    return "".join(f"{name} {data.hex()}\n" for name, data in frames)


def frames_from_text(text: str) -> list[tuple[str, bytes]]:
    """Lines `IFNAME HEX`; a line that is not one is skipped."""
    frames = []
    for line in text.splitlines():
        name, _, hexdata = line.strip().partition(" ")
        try:
            data = bytes.fromhex(hexdata.strip())
        except ValueError:
            continue
        if name and data:
            frames.append((name, data))
    return frames


def _open(name: str, ethertype: int) -> socket.socket:
    import socket  # here, not at the top: capture and replay import this module too

    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
    try:
        sock.bind((name, ethertype))
        index = socket.if_nametoindex(name)
        for group in LLDP_MULTICAST:
            # struct packet_mreq { int ifindex; unsigned short type, alen; unsigned char addr[8]; }
            mreq = struct.pack("iHH8s", index, PACKET_MR_MULTICAST, len(group), group)
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _reason(exc: OSError) -> str:
    return exc.strerror or errno.errorcode.get(exc.errno or 0, "") or str(exc)


def receive(
    interfaces: Sequence[str],
    *,
    ethertype: int = ETH_P_LLDP,
    seconds: float,
    should_stop: Callable[[], bool] = lambda: False,
) -> Frames:
    """Listen on every interface for `seconds` (or until should_stop()); never raises."""
    start = time.monotonic()
    end = start + max(0.0, seconds)
    frames: list[tuple[str, bytes]] = []
    errors: list[str] = []
    counts: dict[str, int] = {}
    sockets: dict[socket.socket, str] = {}
    with selectors.DefaultSelector() as selector:
        for name in dict.fromkeys(interfaces):
            try:
                sock = _open(name, ethertype)
            except OSError as exc:
                errors.append(f"{name}: cannot listen: {_reason(exc)}")
                continue
            sockets[sock] = name
            selector.register(sock, selectors.EVENT_READ)
        try:
            while (
                selector.get_map()
                and (remaining := end - time.monotonic()) > 0
                and not should_stop()
            ):
                for key, _ in selector.select(timeout=min(remaining, POLL_STEP_S)):
                    sock = key.fileobj  # type: ignore[assignment]
                    name = sockets[sock]
                    try:
                        data, address = sock.recvfrom(MAX_FRAME_BYTES)
                    except BlockingIOError:
                        continue
                    except OSError as exc:  # ENETDOWN: the port went down while listening
                        errors.append(f"{name}: receive failed: {_reason(exc)}")
                        selector.unregister(sock)
                        continue
                    if len(address) > 2 and address[2] == PACKET_OUTGOING:
                        continue
                    if counts.get(name, 0) < MAX_FRAMES_PER_INTERFACE:
                        counts[name] = counts.get(name, 0) + 1
                        frames.append((name, data))
        finally:
            for sock in sockets:
                sock.close()
    return Frames(
        interfaces=tuple(interfaces),
        ethertype=ethertype,
        seconds=seconds,
        duration_s=round(time.monotonic() - start, 3),
        frames=frames,
        errors=errors,
        listened=tuple(sockets.values()),
    )
