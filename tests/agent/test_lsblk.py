"""lsblk -J -b: whole disks, old and new typings, skipped devices, the boot medium."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee.tools.lsblk import parse
from conftest import FIXTURES, REALWORLD, mangle

FIXTURE_FILES = sorted(p for p in (FIXTURES / "lsblk").glob("*.json") if ".expected." not in p.name)
REALWORLD_FILES = sorted((REALWORLD / "lsblk-json").glob("*.json"))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


def test_firecracker_vm_skips_zram_and_keeps_the_virtio_disk():
    parsed = parse((FIXTURES / "lsblk" / "firecracker-vm-virtio-zram.json").read_text())
    assert parsed.errors == []
    assert parsed.skipped == ["zram0"]
    [disk] = parsed.disks
    assert (disk.name, disk.type, disk.path) == ("vda", "disk", "/dev/vda")
    assert disk.size_bytes == 274877906944
    assert disk.rotational is True and disk.removable is False and disk.read_only is False
    assert disk.mountpoints == ["/"]
    assert disk.serial is None and disk.is_boot_medium is False


def test_qemu_guest_live_cd_is_the_boot_medium():
    parsed = parse((FIXTURES / "lsblk" / "qemu-q35-scsi-sata-nvme-live-cd.json").read_text())
    assert parsed.skipped == ["loop0"]  # the squashfs root
    disks = {d.name: d for d in parsed.disks}
    assert list(disks) == ["sda", "sdb", "sr0", "nvme0n1"]
    assert disks["sr0"].is_boot_medium and disks["sr0"].mountpoints == [
        "/usr/lib/live/mount/medium"
    ]
    assert not any(d.is_boot_medium for n, d in disks.items() if n != "sr0")
    assert (disks["sda"].serial, disks["sda"].vendor, disks["sda"].hctl) == (
        "WFK2B1EX",
        "SEAGATE",
        "0:0:0:0",
    )
    assert disks["nvme0n1"].serial == "S5XANA0R300417" and disks["nvme0n1"].rotational is False
    assert disks["sdb"].transport == "sata" and disks["sdb"].size_bytes == 480103981056


def test_old_util_linux_strings_for_booleans_and_numbers():
    text = json.dumps(
        {
            "blockdevices": [
                {"name": "sda", "type": "disk", "size": "500107862016", "rota": "1", "rm": "0",
                 "ro": "0", "model": "WDC WD5000AAKX-0 ", "serial": " WD-WCAYUJ123456 "},
            ]
        }
    )  # fmt: skip
    [disk] = parse(text).disks
    assert disk.size_bytes == 500107862016
    assert (disk.rotational, disk.removable, disk.read_only) == (True, False, False)
    assert disk.model == "WDC WD5000AAKX-0" and disk.serial == "WD-WCAYUJ123456"


def test_boot_medium_is_marked_through_a_partition_or_the_disk_itself():
    text = json.dumps(
        {
            "blockdevices": [
                {"name": "sr0", "type": "rom", "size": 1073741824,
                 "mountpoint": "/run/live/medium"},
                {"name": "sdb", "type": "disk", "size": 32017047552, "rm": True, "children": [
                    {"name": "sdb1", "type": "part", "mountpoints": ["/run/live/medium", None]}]},
                {"name": "sda", "type": "disk", "size": 960197124096, "children": [
                    {"name": "sda1", "type": "part", "mountpoint": "/srv"}]},
                {"name": "loop0", "type": "loop",
                 "mountpoint": "/run/live/rootfs/filesystem.squashfs"},
                {"name": "ram0", "type": "disk"},
            ]
        }
    )  # fmt: skip
    parsed = parse(text)
    assert {d.name: d.is_boot_medium for d in parsed.disks} == {
        "sr0": True,
        "sdb": True,
        "sda": False,
    }
    assert parsed.skipped == ["loop0", "ram0"]
    assert parsed.disks[1].children[0].mountpoints == ["/run/live/medium"]


def test_flat_listing_nests_partitions_under_their_disk():
    text = json.dumps(
        {
            "blockdevices": [
                {"kname": "nvme0n1", "type": "disk", "size": 512110190592},
                {"kname": "nvme0n1p1", "type": "part", "size": 1048576},
                {"kname": "sda", "type": "disk", "size": 64160400896},
                {"kname": "sda1", "type": "part", "pkname": "sda", "size": 1048576},
            ]
        }
    )
    parsed = parse(text)
    assert [(d.name, [c.name for c in d.children]) for d in parsed.disks] == [
        ("nvme0n1", ["nvme0n1p1"]),
        ("sda", ["sda1"]),
    ]


@pytest.mark.parametrize("text", ["", "not json", "[]", "{}", '{"blockdevices": 3}', "null"])
def test_bad_input_gives_an_empty_result_with_an_error(text):
    parsed = parse(text)
    assert parsed.disks == [] and parsed.errors


@settings(max_examples=150, deadline=10_000)
@given(st.text(max_size=400))
def test_never_raises_on_arbitrary_text(text):
    parsed = parse(text)
    # Text that is not lsblk's JSON is one error and no disk, never a silent empty list.
    if not _is_json_object(text):
        assert parsed.disks == [] and len(parsed.errors) == 1


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


device_keys = st.sampled_from(
    ["name", "kname", "type", "size", "rm", "rota", "ro", "mountpoint", "mountpoints", "children",
     "pkname", "serial"]
)  # fmt: skip


leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
device_values = (
    leaf | st.lists(leaf, max_size=3) | st.lists(st.dictionaries(device_keys, leaf), max_size=2)
)


@settings(max_examples=100, deadline=10_000)
@given(st.lists(st.dictionaries(device_keys, device_values), max_size=3))
def test_never_raises_on_devices_with_any_values(devices):
    parse(json.dumps({"blockdevices": devices}))
    parse(json.dumps({"blockdevices": [{"name": "sda", "children": devices}]}))


@settings(max_examples=150, deadline=10_000)
@given(json_values)
def test_never_raises_on_any_json_value(value):
    parse(json.dumps(value))
    parse(json.dumps({"blockdevices": value}))
    parse(json.dumps({"blockdevices": [value]}))


@pytest.mark.skipif(not FIXTURE_FILES, reason="no lsblk fixtures")
@settings(max_examples=60, deadline=10_000, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_never_raises_on_fixtures_with_lines_dropped_duplicated_or_cut(data):
    text = mangle(data, data.draw(st.sampled_from(FIXTURE_FILES)).read_text())
    parse(text)


@pytest.mark.skipif(not REALWORLD_FILES, reason="../shared/realworld/lsblk-json is absent")
def test_realworld_outputs_parse_and_yield_what_a_person_sees():
    parsed = {p.name: parse(p.read_text(errors="replace")) for p in REALWORLD_FILES}
    assert all(not p.errors and p.disks for p in parsed.values())
    by_file = {name: {d.name: d for d in p.disks} for name, p in parsed.items()}

    latitude = by_file["Mvth1s_hwbench__latitude-5420-lsblk-Jb-raw.json"]
    assert latitude["nvme0n1"].model == "Samsung SSD 990 EVO Plus 1TB"
    assert latitude["nvme0n1"].size_bytes == 1000204886016
    assert parsed["Mvth1s_hwbench__latitude-5420-lsblk-Jb-raw.json"].skipped == ["zram0"]

    balena = by_file["balena-io-modules_drivelist__no-children-mountpoints-oldutil.json"]
    assert balena["sda"].removable is True and balena["nvme0n1"].removable is False
    assert len(balena["nvme0n1"].children) == 3

    talos = by_file["samr037_node-debug-dashboard__talos-node-lsblk-J.json"]
    assert talos["sda"].model == "PNY CS900 240GB" and talos["sdc"].rotational is True
    assert "loop0" not in talos

    dvd = by_file["canonical_checkbox__HP_DVDRW_WITH_ISO9660_DISC-reindented.json"]
    assert dvd["sr0"].type == "rom" and [c.name for c in dvd["sda"].children] == ["sda1", "sda3"]
