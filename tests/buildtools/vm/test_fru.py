"""buildtools.vm.fru: FRU and SDR images follow the IPMI FRU spec v1.0 and IPMI 2.0 SDR layout.

The images are read back here by a small reader written from the spec (not from fru.py), and,
where FreeIPMI's `ipmi-fru --fru-file` is installed, by that real decoder too. The guest-side
proof (the real ipmitool over QEMU's BMC) is buildtools.vm.checks.check_ipmitool_fru in
`nox -s vm_test`.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buildtools.vm import fru
from buildtools.vm.qemu import HARDWARE_FILE, load_hardware

# --- a reader written from the spec -----------------------------------------------------------


def read_fields(area: bytes, start: int) -> list[str]:
    """Type/length fields from start until the 0xC1 end marker."""
    fields, pos = [], start
    while area[pos] != 0xC1:
        kind, length = area[pos] >> 6, area[pos] & 0x3F
        assert kind == 0b11, f"field type {kind} at {pos}"
        fields.append(area[pos + 1 : pos + 1 + length].decode("latin-1"))
        pos += 1 + length
    return fields


def read_area(image: bytes, offset_units: int) -> bytes:
    start = offset_units * 8
    length = image[start + 1] * 8
    area = image[start : start + length]
    assert area[0] == 0x01, "area format version"
    assert sum(area) % 256 == 0, "area checksum"
    return area


def read_fru(image: bytes) -> dict[str, object]:
    header = image[:8]
    assert header[0] == 0x01, "common header format version"
    assert sum(header) % 256 == 0, "common header checksum"
    out: dict[str, object] = {}
    if header[2]:
        area = read_area(image, header[2])
        out["chassis_type"] = area[2]
        out["chassis"] = read_fields(area, 3)
    if header[3]:
        area = read_area(image, header[3])
        minutes = int.from_bytes(area[3:6], "little")
        out["board_date"] = datetime(1996, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
        out["board"] = read_fields(area, 6)
    if header[4]:
        out["product"] = read_fields(read_area(image, header[4]), 3)
    if header[5]:
        pos = header[5] * 8
        record = image[pos : pos + 5]
        assert sum(record) % 256 == 0, "multirecord header checksum"
        data = image[pos + 5 : pos + 5 + record[2]]
        assert (sum(data) + record[3]) % 256 == 0, "multirecord data checksum"
        out["multirecord_type"] = record[0]
        out["multirecord_last"] = bool(record[1] & 0x80)
        out["psu_capacity_w"] = int.from_bytes(data[0:2], "little") & 0x0FFF
        out["psu_peak_w"] = int.from_bytes(data[18:20], "little") & 0x0FFF
        out["psu_hot_swap"] = bool(data[17] & 0x02)
    return out


def read_sensor(record: bytes) -> dict[str, object]:
    """IPMI 2.0 table 43-1 (full, type 0x01) and 43-2 (compact, type 0x02), 0-based offsets."""
    name_at = 47 if record[3] == 0x01 else 31
    length = record[name_at] & 0x1F
    return {
        "type": record[3],
        "owner": record[5],
        "number": record[7],
        "entity": record[8],
        "instance": record[9],
        "sensor_type": record[12],
        "reading_type": record[13],
        "assert_mask": record[14] | record[15] << 8,
        "reading_mask": record[18] | record[19] << 8,
        "units": record[21] if record[3] == 0x01 else None,
        "unr_ucr_unc": tuple(record[36:39]) if record[3] == 0x01 else None,
        "name": record[name_at + 1 : name_at + 1 + length].decode("ascii"),
        "length_ok": name_at + 1 + length == len(record),
    }


def read_sdr(image: bytes) -> list[dict[str, object]]:
    """FRU Device Locator records (type 0x11); sensor records are read by read_sensor."""
    records, pos = [], 0
    while pos < len(image):
        length = image[pos + 4] + 5
        record = image[pos : pos + length]
        assert len(record) == length, "SDR record cut short"
        pos += length
        if record[3] != 0x11:
            continue
        name_len = record[15] & 0x1F
        records.append(
            {
                "type": record[3],
                "address": record[5],
                "fru_id": record[6],
                "logical": bool(record[7] & 0x80),
                "device_type": record[10],
                "entity": record[12],
                "instance": record[13],
                "name": record[16 : 16 + name_len].decode("ascii"),
            }
        )
    return records


def sensor_records(image: bytes) -> list[dict[str, object]]:
    records, pos = [], 0
    while pos < len(image):
        record = image[pos : pos + image[pos + 4] + 5]
        pos += len(record)
        if record[3] in (0x01, 0x02):
            records.append(read_sensor(record))
    return records


# --- tests ------------------------------------------------------------------------------------

BOARD = fru.BoardArea(
    manufacturer="Supermicro",
    product="X11DPG-OT-CPU",
    serial="OM19BS004211",
    part="MBD-X11DPG-OT-CPU",
    mfg_date=datetime(2019, 8, 14, 9, 30, tzinfo=UTC),
)
PRODUCT = fru.ProductArea(
    manufacturer="Supermicro",
    name="PWS-2K20A-1R",
    part="PWS-2K20A-1R",
    version="1.1",
    serial="P2K2ACJ19NT0512",
    asset="",
)
PSU = fru.PowerSupplyRecord(
    capacity_w=2200, peak_w=2400, hot_swap=True, input_low_v=200, input_high_v=240
)


def test_board_area_round_trips() -> None:
    image = fru.encode_fru(
        fru.FruDevice(fru_id=1, name="Mainboard", entity="system_board", board=BOARD)
    )
    decoded = read_fru(image)
    assert decoded["board"] == [
        "Supermicro",
        "X11DPG-OT-CPU",
        "OM19BS004211",
        "MBD-X11DPG-OT-CPU",
        "",
    ]
    assert decoded["board_date"] == BOARD.mfg_date
    assert len(image) == fru.FRU_AREA_SIZE


def test_power_supply_device_has_product_area_and_psu_record() -> None:
    device = fru.FruDevice(
        fru_id=2, name="PS1", entity="power_supply", board=BOARD, product=PRODUCT, power_supply=PSU
    )
    decoded = read_fru(fru.encode_fru(device))
    assert decoded["product"] == [
        "Supermicro",
        "PWS-2K20A-1R",
        "PWS-2K20A-1R",
        "1.1",
        "P2K2ACJ19NT0512",
        "",
        "",
    ]
    assert decoded["multirecord_type"] == 0x00
    assert decoded["multirecord_last"] is True
    assert (decoded["psu_capacity_w"], decoded["psu_peak_w"], decoded["psu_hot_swap"]) == (
        2200,
        2400,
        True,
    )


def test_chassis_area() -> None:
    chassis = fru.ChassisArea(type_code=23, part="CSE-418GTS-R4000B", serial="C4180LK19A50211")
    device = fru.FruDevice(fru_id=1, name="Mainboard", entity="system_board", chassis=chassis)
    decoded = read_fru(fru.encode_fru(device))
    assert decoded["chassis_type"] == 23
    assert decoded["chassis"] == ["CSE-418GTS-R4000B", "C4180LK19A50211"]


@given(st.binary(max_size=64))
def test_zero_checksum_makes_the_sum_zero(data: bytes) -> None:
    assert (sum(data) + fru.zero_checksum(data)) % 256 == 0


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=63))
def test_fields_round_trip_or_refuse(text: str) -> None:
    if len(text) == 1:
        with pytest.raises(fru.FruError):
            fru.encode_field(text)
        return
    encoded = fru.encode_field(text) + b"\xc1"
    assert read_fields(encoded, 0) == [text]


def test_field_limits() -> None:
    with pytest.raises(fru.FruError, match="63"):
        fru.encode_field("x" * 64)
    with pytest.raises(fru.FruError, match="end marker"):
        fru.encode_field("A")
    assert fru.encode_field("") == b"\xc0"


def test_date_outside_the_fru_clock_is_refused() -> None:
    early = fru.BoardArea(**{**_board_kwargs(), "mfg_date": datetime(1995, 1, 1, tzinfo=UTC)})
    with pytest.raises(fru.FruError, match="outside"):
        fru.encode_board_area(early)


def _board_kwargs() -> dict[str, object]:
    return {f: getattr(BOARD, f) for f in ("manufacturer", "product", "serial", "part", "mfg_date")}


def test_fru_file_places_device_n_at_n_times_area_size() -> None:
    devices = fru.parse_devices(_toml()["fru"])
    image = fru.encode_fru_file(devices)
    assert len(image) == (max(d.fru_id for d in devices) + 1) * fru.FRU_AREA_SIZE
    assert image[: fru.FRU_AREA_SIZE] == bytes(fru.FRU_AREA_SIZE)  # ID 0 stays empty
    for device in devices:
        start = device.fru_id * fru.FRU_AREA_SIZE
        decoded = read_fru(image[start : start + fru.FRU_AREA_SIZE])
        assert decoded["board"][2] == device.board.serial


def test_sdr_has_one_fru_locator_per_device() -> None:
    devices = fru.parse_devices(_toml()["fru"])
    records = read_sdr(fru.encode_sdr_file(devices))
    assert [(r["fru_id"], r["name"]) for r in records] == [(d.fru_id, d.name) for d in devices]
    assert {r["type"] for r in records} == {0x11}
    assert all(r["logical"] and r["address"] == 0x20 and r["device_type"] == 0x10 for r in records)
    psus = [r for r in records if r["entity"] == fru.ENTITY_IDS["power_supply"]]
    assert [r["instance"] for r in psus] == [1, 2]


def test_sensor_records_follow_the_sdr_layout() -> None:
    sensors = fru.parse_sensors(_toml()["sensor"])
    records = sensor_records(fru.encode_sdr_file([], sensors))
    assert [r["name"] for r in records] == [s.name for s in sensors]
    assert all(r["length_ok"] and r["owner"] == 0x20 for r in records)
    ps2 = records[0]
    assert (ps2["type"], ps2["number"], ps2["sensor_type"], ps2["reading_type"]) == (
        0x02, 0, 0x08, 0x6F,
    )  # fmt: skip
    assert ps2["entity"] == fru.SENSOR_ENTITIES["power_supply"] and ps2["instance"] == 2
    assert ps2["assert_mask"] == ps2["reading_mask"] == 0b1011  # presence, failure, input lost
    temp = next(r for r in records if r["type"] == 0x01)
    assert (temp["name"], temp["units"], temp["unr_ucr_unc"]) == ("CPU1 Temp", 0x01, (100, 95, 90))
    # The simulator makes live sensors of compact records numbered below 20 only.
    assert all(r["number"] < fru.QEMU_LIVE_SENSORS for r in records if r["type"] == 0x02)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"number": 300}, "within 0..254"),
        ({"type": "smoke"}, "type"),
        ({"states": [15]}, "offsets"),
        ({"name": "a name longer than sixteen"}, "1 to 16"),
    ],
)
def test_bad_sensors_are_refused(change: dict, message: str) -> None:
    table = {**_toml()["sensor"][0], **change}
    with pytest.raises(fru.FruError, match=message):
        fru.encode_sdr_file([], fru.parse_sensors([table]))


def _toml() -> dict:
    import tomllib

    with HARDWARE_FILE.open("rb") as handle:
        return tomllib.load(handle)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": 0}, "within 1..254"),
        ({"entity": "fan"}, "entity"),
        ({"board": {**_toml()["fru"][0]["board"], "mfg_date": "2019-08-14T09:30:00"}}, "time zone"),
        ({"board": {**_toml()["fru"][0]["board"], "mfg_date": "yesterday"}}, "ISO 8601"),
        ({"name": 7}, "name must be a string"),
    ],
)
def test_bad_descriptions_are_refused(change: dict, message: str) -> None:
    table = {**_toml()["fru"][0], **change}
    with pytest.raises(fru.FruError, match=message):
        fru.parse_devices([table])


def test_duplicate_ids_are_refused() -> None:
    first = _toml()["fru"][0]
    with pytest.raises(fru.FruError, match="unique"):
        fru.parse_devices([first, first])


def test_main_writes_both_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fru.main([str(HARDWARE_FILE), str(tmp_path)]) == 0
    assert (tmp_path / "fru.bin").stat().st_size == 4 * fru.FRU_AREA_SIZE
    assert read_sdr((tmp_path / "sdr.bin").read_bytes())[0]["name"] == "Mainboard"
    assert "3 FRU devices" in capsys.readouterr().out


def test_main_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "hw.toml"
    bad.write_text('[[fru]]\nid = 1\nname = "X"\nentity = "system_board"\n')
    out = tmp_path / "out"
    assert fru.main([str(bad), str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no area" in err
    assert not out.exists()
    assert fru.main([str(tmp_path / "missing.toml"), str(out)]) == 1


def test_the_description_encodes() -> None:
    hw = load_hardware()
    assert [d.name for d in hw.fru_devices] == ["Mainboard", "PS1", "PS2"]


@pytest.mark.skipif(shutil.which("ipmi-fru") is None, reason="FreeIPMI ipmi-fru not installed")
def test_freeipmi_decodes_every_device(tmp_path: Path) -> None:
    """An independent, real decoder (FreeIPMI 1.6) reads what fru.py wrote, checksums included."""
    for device in load_hardware().fru_devices:
        path = tmp_path / f"fru{device.fru_id}.bin"
        path.write_bytes(fru.encode_fru(device))
        result = subprocess.run(
            ["ipmi-fru", f"--fru-file={path}"], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        assert "checksum" not in (result.stdout + result.stderr).lower()
        assert f"FRU Board Serial Number: {device.board.serial}" in result.stdout
        if device.product:
            assert f"FRU Product Name: {device.product.name}" in result.stdout
        if device.power_supply:
            watts = device.power_supply.capacity_w
            assert f"FRU Power Supply Overall Capacity: {watts} Watts" in result.stdout
        if device.chassis:
            assert f"FRU Chassis Serial Number: {device.chassis.serial}" in result.stdout


def test_sel_events_become_platform_event_messages() -> None:
    sensors = fru.parse_sensors(_toml()["sensor"])
    events = fru.parse_sel_events(_toml()["sel_event"], sensors)
    ac_lost, ac_back = (e for e in events if e.state == "Power Supply AC lost")
    # netfn 0x04 cmd 0x02: generator 0x20, EvM rev 4, power supply (0x08) sensor 1,
    # sensor-specific (0x6f; 0xef deasserted), offset 3, no event data 2 and 3.
    assert fru.platform_event_argv(ac_lost)[2:] == (
        ["0x04", "0x02", "0x20", "0x04", "0x08", "0x01", "0x6f", "0x03", "0xff", "0xff"]
    )
    assert fru.platform_event_argv(ac_back)[8] == "0xef"
    with pytest.raises(fru.FruError, match="not a \\[\\[sensor\\]\\]"):
        fru.parse_sel_events([{"sensor": "PS9", "state": "x", "offset": 1}], sensors)
    with pytest.raises(fru.FruError, match="expect"):
        fru.parse_sel_events([{**_toml()["sel_event"][0], "expect": "bad"}], sensors)
