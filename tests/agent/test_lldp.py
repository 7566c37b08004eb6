"""LLDP: frames Debian's lldpd sent, decoded; a real lldpd across a veth pair between two
network namespaces; a silent port that ends at the bound; capture and replay of frames;
damaged and arbitrary frames."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee.capture import ReplayRunner
from bee.packets import ETH_P_LLDP, frames_from_text, frames_to_text
from bee.probe import Probe
from bee.tools import lldp, network
from conftest import AGENT_DIR, FIXTURES, REALWORLD, assert_section_valid, mangle

IFNAME = FIXTURES / "lldp" / "netns-veth-lldpd-1.0.16-ifname.txt"
PORT_MAC = FIXTURES / "lldp" / "netns-veth-lldpd-1.0.16-port-mac.txt"
REALWORLD_FILES = sorted((REALWORLD / "lldp").glob("*"))
BOUNDED = timedelta(seconds=20)


def test_lldpd_frames_decode_to_the_switch_and_port():
    (neighbor,) = lldp.parse(IFNAME.read_text())
    assert neighbor.interface == "n0"
    assert (neighbor.system_name, neighbor.port_id, neighbor.port_id_subtype) == (
        "leaf-07.rack12",
        "swp7",
        "interface_name",
    )
    assert neighbor.port_description == "server bee-01 port 1"
    assert neighbor.system_description == "Debian lldpd standing in for a switch"
    assert neighbor.management_addresses == ["192.0.2.9", "2001:db8::9"]
    assert neighbor.chassis_id_subtype == "mac" and neighbor.chassis_id == neighbor.source_mac
    assert neighbor.ttl_s == 4  # lldpd: tx-interval 1 s x hold 4


def test_a_port_id_given_as_a_mac():
    (neighbor,) = lldp.parse(PORT_MAC.read_text())
    assert neighbor.port_id_subtype == "mac"
    assert neighbor.port_id == neighbor.source_mac  # lldpd gives the veth's own MAC


def test_repeated_frames_give_one_neighbor_per_port():
    frames = frames_from_text(IFNAME.read_text())
    assert len(frames) >= 2  # tx-interval 1 s over a 3.5 s window
    assert len(lldp.neighbors(frames + frames)) == 1


# A renderer: cheap, so render -> parse must give back what went in.
def tlv(kind: int, value: bytes) -> bytes:
    return ((kind << 9) | len(value)).to_bytes(2, "big") + value


def render(
    *,
    chassis: bytes,
    port: bytes,
    name: str | None = None,
    descr: str | None = None,
    pvid: int | None = None,
    vlan: tuple[int, str] | None = None,
    tagged: bool = False,
) -> bytes:
    body = tlv(1, chassis) + tlv(2, port) + tlv(3, (120).to_bytes(2, "big"))
    if descr is not None:
        body += tlv(4, descr.encode())
    if name is not None:
        body += tlv(5, name.encode())
    if pvid is not None:
        body += tlv(127, b"\x00\x80\xc2\x01" + pvid.to_bytes(2, "big"))
    if vlan is not None:
        encoded = vlan[1].encode()
        body += tlv(
            127, b"\x00\x80\xc2\x03" + vlan[0].to_bytes(2, "big") + bytes([len(encoded)]) + encoded
        )
    body += tlv(0, b"")
    header = bytes.fromhex("0180c200000e48df37e02400")
    if tagged:
        header += b"\x81\x00\x00\x64"
    return header + ETH_P_LLDP.to_bytes(2, "big") + body


def test_vlan_tlvs_and_a_tagged_frame():
    frame = render(
        chassis=b"\x07spine-1",
        port=b"\x05Ethernet12",
        pvid=100,
        vlan=(100, "servers"),
        tagged=True,
    )
    neighbor = lldp.parse_frame("eno1", frame)
    assert (neighbor.chassis_id, neighbor.chassis_id_subtype) == ("spine-1", "local")
    assert (neighbor.port_vlan_id, neighbor.vlan_names) == (100, ["100 servers"])
    assert neighbor.source_mac == "48:df:37:e0:24:00"


SAFE_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs", "Cc", "Z"]), min_size=1, max_size=60
)


@settings(max_examples=200, deadline=BOUNDED)
@given(
    chassis=SAFE_TEXT,
    port=SAFE_TEXT,
    name=SAFE_TEXT | st.none(),
    descr=SAFE_TEXT | st.none(),
    pvid=st.integers(1, 4094) | st.none(),
)
def test_render_then_parse_round_trips(chassis, port, name, descr, pvid):
    frame = render(
        chassis=b"\x07" + chassis.encode(),
        port=b"\x05" + port.encode(),
        name=name,
        descr=descr,
        pvid=pvid,
    )
    (neighbor,) = lldp.parse(frames_to_text([("eth0", frame)]))
    assert (neighbor.chassis_id, neighbor.port_id) == (chassis.strip(), port.strip())
    assert (neighbor.system_name, neighbor.port_description) == (
        name.strip() if name else None,
        descr.strip() if descr else None,
    )
    assert neighbor.port_vlan_id == pvid
    assert_section_valid("network", _section([neighbor]))


def _section(neighbors):
    return network.Network(
        interfaces=[],
        interface_count=0,
        boot_mac_address=None,
        infiniband=[],
        lldp=network.LldpResult(
            window_s=1.0,
            duration_s=1.0,
            listened=["eth0"],
            not_listened=[],
            firmware_agent_disabled=[],
            neighbors=neighbors,
        ),
    )


# -- other people's LLDP (lldpctl output, not frames) ---------------------------------------


def lldpctl_neighbors(path: Path) -> list[dict[str, str]]:
    """What lldpctl printed per interface: keyvalue (`lldp.eth0.chassis.name=spine1`) or JSON."""
    text = path.read_text(errors="replace")
    found: dict[str, dict[str, str]] = {}
    if path.suffix == ".json":

        def walk(node, ifname=None):
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "interface" and isinstance(value, dict | list):
                        items = (
                            value.items()
                            if isinstance(value, dict)
                            else [(i.get("name"), i) for i in value if isinstance(i, dict)]
                        )
                        for name, body in items:
                            walk(body, str(name))
                    elif ifname and key in ("chassis", "port") and isinstance(value, dict | list):
                        _collect(found.setdefault(ifname, {}), key, value)
                    else:
                        walk(value, ifname)
            elif isinstance(node, list):
                for item in node:
                    walk(item, ifname)

        try:
            walk(json.loads(text))
        except ValueError:
            return []
    else:
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            parts = key.split(".")
            if sep and len(parts) >= 4 and parts[0] == "lldp":
                slot = found.setdefault(parts[1], {})
                if parts[2:] == ["chassis", "name"]:
                    slot["name"] = value
                elif parts[2:] == ["port", "ifname"] or parts[2:] == ["port", "local"]:
                    slot.setdefault("port", value)
                elif parts[2:] == ["port", "descr"]:
                    slot["descr"] = value
                elif parts[2] == "chassis" and parts[3] in ("mac", "local"):
                    slot.setdefault("chassis", value)
    return [v for v in found.values() if v.get("port")]


def _collect(slot, key, value):
    value = value[0] if isinstance(value, list) and value else value
    if not isinstance(value, dict):
        return
    if key == "chassis":
        for name, body in value.items():
            ident = body.get("id") if isinstance(body, dict) else None
            if isinstance(ident, dict) and "id" in ident:  # {"spine1": {"id": {...}}}
                slot["name"] = name
                ident = ident["id"]
            ident = ident[0] if isinstance(ident, list) and ident else ident
            if isinstance(ident, dict) and ident.get("value"):
                slot.setdefault("chassis", str(ident["value"]))
            elif name == "id" and isinstance(body, dict) and body.get("value"):
                slot.setdefault("chassis", str(body["value"]))
            elif name == "name":
                value_of = body[0] if isinstance(body, list) and body else body
                slot["name"] = str(
                    value_of.get("value") if isinstance(value_of, dict) else value_of
                )
    else:
        ident = value.get("id")
        ident = ident[0] if isinstance(ident, list) and ident else ident
        if isinstance(ident, dict) and ident.get("value"):
            slot["port"] = str(ident["value"])
        descr = value.get("descr")
        descr = descr[0] if isinstance(descr, list) and descr else descr
        if isinstance(descr, dict) and descr.get("value"):
            slot["descr"] = str(descr["value"])


@pytest.mark.skipif(not REALWORLD_FILES, reason="../shared/realworld/lldp is absent")
def test_realworld_lldpctl_values_through_the_frame_codec():
    """The folder holds lldpctl output, not frames: bee's frame parser finds no frame in it
    (and does not crash); the switch names and port ids people saw, rendered into frames,
    decode back to themselves (long descriptions, ports named by MAC, odd characters)."""
    decoded = total = 0
    for path in REALWORLD_FILES:
        assert lldp.parse(path.read_text(errors="replace")) == []
        for seen in lldpctl_neighbors(path):
            total += 1
            frame = render(
                chassis=b"\x07" + seen.get("chassis", "unknown").encode(),
                port=b"\x05" + seen["port"].encode(),
                name=seen.get("name"),
                descr=seen.get("descr"),
            )
            neighbor = lldp.parse_frame("eth0", frame)
            assert neighbor.port_id == seen["port"].strip()
            assert neighbor.system_name == ((seen.get("name") or "").strip() or None)
            decoded += 1
    assert total >= 5 and decoded == total
    print(f"realworld lldp: {decoded} of {total} neighbours round-trip through frames")


# -- properties -----------------------------------------------------------------------------


@settings(max_examples=300, deadline=BOUNDED)
@given(st.binary(max_size=600))
def test_never_raises_on_arbitrary_bytes(data):
    lldp.parse_frame("eth0", data)
    lldp.parse_frame("eth0", bytes.fromhex("0180c200000e48df37e0240088cc") + data)


@settings(max_examples=200, deadline=BOUNDED)
@given(st.text(max_size=400))
def test_never_raises_on_arbitrary_text(text):
    lldp.parse(text)


@settings(
    max_examples=60, deadline=BOUNDED, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
@pytest.mark.parametrize("path", [IFNAME, PORT_MAC], ids=lambda p: p.name)
def test_never_raises_on_real_frames_cut_or_with_bytes_changed(path, data):
    frames = frames_from_text(path.read_text())
    name, frame = frames[0]
    frame = bytearray(frame)
    for index, value in data.draw(
        st.lists(st.tuples(st.integers(0, len(frame) - 1), st.integers(0, 255)), max_size=8)
    ):
        frame[index] = value
    frame = bytes(frame[: data.draw(st.integers(0, len(frame)))])
    lldp.parse_frame(name, frame)
    lldp.parse(mangle(data, frames_to_text([(name, frame), *frames])))


@settings(max_examples=5, deadline=BOUNDED, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2_000, 20_000))
def test_many_tlvs_and_lines_are_bounded_in_time(count):
    frame = bytes.fromhex("0180c200000e48df37e0240088cc") + tlv(4, b"x" * 100) * count
    lldp.parse_frame("eth0", frame)
    lldp.parse(f"eth0 {frame.hex()}\n" * 50 + "eth0 zz\n" * count)


# -- for real: lldpd in a network namespace --------------------------------------------------

NEEDS = [shutil.which(t) for t in ("ip", "lldpd")]
real = pytest.mark.skipif(
    os.geteuid() != 0 or not all(NEEDS), reason="needs root, iproute2 and lldpd (apt install lldpd)"
)

NEAR_SCRIPT = """
import json, sys, threading
from pathlib import Path
from bee.capture import RecordingRunner
from bee.probe import Probe
from bee.runner import SystemRunner
from bee.serialize import to_jsonable
from bee.tools import network
import time
args = json.loads(sys.argv[1])
system = SystemRunner()
if args.get("deadline_in_s") is not None:
    system.set_deadline(time.monotonic() + args["deadline_in_s"])
if args.get("abort_after_s") is not None:
    threading.Timer(args["abort_after_s"], system.abort).start()
recorder = RecordingRunner(system, Path(args["capture"]) if args.get("capture") else None)
probe = Probe(recorder, "network")
result = network.listen_lldp(probe, args["ports"], args["seconds"])
recorder.finish()
print(json.dumps({"lldp": to_jsonable(result), "errors": probe.errors}))
"""


class Namespaces:
    """Two network namespaces joined by a veth pair: `n0` near (bee), `swp7` far (lldpd)."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.near, self.far = f"bee-near-{tag}", f"bee-far-{tag}"
        # Not under pytest's tmp_path: lldpcli runs as _lldpd and must reach the socket and
        # the configuration, so every directory on the way has to be searchable.
        self.tmp = Path(tempfile.mkdtemp(prefix="bee-lldpd-"))
        self.tmp.chmod(0o755)
        self.lldpd: subprocess.Popen | None = None
        for ns in (self.near, self.far):
            self.ip("netns", "add", ns)
        self.ip(
            "link",
            "add",
            "n0",
            "netns",
            self.near,
            "type",
            "veth",
            "peer",
            "name",
            "swp7",
            "netns",
            self.far,
        )
        self.ip("-n", self.near, "link", "set", "n0", "up")
        self.ip("-n", self.far, "link", "set", "swp7", "up")
        self.ip("-n", self.far, "addr", "add", "192.0.2.9/24", "dev", "swp7")

    @staticmethod
    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    def start_lldpd(self) -> None:
        conf = self.tmp / "far.conf"
        conf.write_text(
            "configure system hostname leaf-07.rack12\n"
            "configure lldp tx-interval 1\n"
            "configure lldp portidsubtype ifname\n"
            'configure ports swp7 lldp portdescription "server bee-01 port 1"\n'
        )
        conf.chmod(0o644)
        self.lldpd = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.far,
                "lldpd",
                "-d",
                "-u",
                str(self.tmp / "far.sock"),
                "-O",
                str(conf),
                "-I",
                "swp7",
                "-m",
                "192.0.2.9",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def listen(self, ports: list[str], seconds: float, **extra) -> dict:
        args = json.dumps({"ports": ports, "seconds": seconds, **extra})
        done = subprocess.run(
            ["ip", "netns", "exec", self.near, sys.executable, "-S", "-E", "-c", NEAR_SCRIPT, args],
            cwd=AGENT_DIR,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def close(self) -> None:
        if self.lldpd is not None:
            os.killpg(self.lldpd.pid, signal.SIGTERM)
            self.lldpd.wait(timeout=10)
        for ns in (self.near, self.far):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def namespaces():
    pair = Namespaces()
    yield pair
    pair.close()


@real
def test_lldpd_across_a_veth_pair_is_decoded_by_the_near_side(namespaces, tmp_path):
    namespaces.start_lldpd()
    capture = tmp_path / "capture"
    heard = namespaces.listen(["n0", "nosuch0"], 4.0, capture=str(capture))["lldp"]
    (neighbor,) = heard["neighbors"]
    assert (neighbor["system_name"], neighbor["port_id"], neighbor["port_description"]) == (
        "leaf-07.rack12",
        "swp7",
        "server bee-01 port 1",
    )
    assert neighbor["management_addresses"] == ["192.0.2.9"] and neighbor["interface"] == "n0"
    assert heard["listened"] == ["n0"]
    assert heard["not_listened"] == [
        {"interface": "nosuch0", "reason": "cannot listen: No such device"}
    ]
    # The capture holds the frames: a replay elsewhere decodes the same neighbour, at once.
    replayed = network.listen_lldp(Probe(ReplayRunner(capture), "network"), ["n0", "nosuch0"], 4.0)
    assert [n.system_name for n in replayed.neighbors] == ["leaf-07.rack12"]
    assert replayed.not_listened == [
        network.PortNotListened(interface="nosuch0", reason="cannot listen: No such device")
    ]
    # Asked about other ports, the replay says it does not know (None), not "no neighbour".
    assert network.listen_lldp(Probe(ReplayRunner(capture), "network"), ["eth9"], 4.0) is None


@real
def test_a_port_without_lldp_ends_at_the_bound_with_no_neighbours(namespaces):
    started = time.monotonic()
    heard = namespaces.listen(["n0"], 2.0)["lldp"]
    assert heard["neighbors"] == [] and heard["listened"] == ["n0"]
    assert heard["duration_s"] >= 2.0 and time.monotonic() - started >= 2.0


@real
def test_the_audit_deadline_and_an_abort_cut_the_window(namespaces):
    # A 30 s window under a deadline 3 s away ends 1 s before the deadline (the margin that
    # leaves the collector time to hand in its section); an abort ends it at once.
    cut = namespaces.listen(["n0"], 30.0, deadline_in_s=3.0)["lldp"]
    assert cut["window_s"] <= 2.0 and cut["duration_s"] < 10
    aborted = namespaces.listen(["n0"], 30.0, abort_after_s=1.0)["lldp"]
    assert aborted["duration_s"] < 10 and aborted["window_s"] == 30.0
