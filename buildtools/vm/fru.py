"""IPMI FRU and SDR images for QEMU's simulated BMC, from the readable hardware description.

QEMU 7.2's `-device ipmi-bmc-sim,frudatafile=F,fruareasize=N,sdrfile=S`: F holds one FRU device
per N bytes (the FRU device ID is the index), S holds raw SDR records back to back. ipmitool
prints the FRU devices that FRU Device Locator records (SDR type 0x11) name, and nothing for the
built-in FRU 0, so devices start at ID 1 and each gets a locator record.

The FRU layout follows the IPMI Platform Management FRU Information Storage Definition v1.0:
an 8-byte common header, then chassis, board and product info areas (type/length encoded
strings, padded to multiples of 8 bytes, zero checksum), then multirecords (here the Power
Supply Information record, type 0x00).

    python3 -m buildtools.vm.fru HARDWARE.toml OUTDIR   writes OUTDIR/fru.bin and OUTDIR/sdr.bin
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

FRU_AREA_SIZE = 1024  # ipmi-bmc-sim's default fruareasize
FRU_EPOCH = datetime(1996, 1, 1, tzinfo=UTC)
BMC_SLAVE_ADDRESS = 0x20

# IPMI 2.0 table 43-13 entity IDs used here.
ENTITY_IDS = {
    "system_board": 0x07,
    "power_supply": 0x0A,
    "system_chassis": 0x17,
}


# IPMI 2.0 table 42-3 sensor types, table 42-2 event/reading types, and the entity IDs
# (table 43-13) sensors name.
SENSOR_TYPES = {
    "temperature": 0x01, "voltage": 0x02, "fan": 0x04, "processor": 0x07,
    "power_supply": 0x08, "power_unit": 0x09, "memory": 0x0C, "drive_slot": 0x0D,
}  # fmt: skip
READING_TYPES = {"threshold": 0x01, "redundancy": 0x0B, "sensor_specific": 0x6F}
SENSOR_ENTITIES = {
    "processor": 0x03, "disk_bay": 0x04, "system_board": 0x07, "power_supply": 0x0A,
    "fan": 0x1D, "memory_device": 0x20,
}  # fmt: skip
QEMU_LIVE_SENSORS = 20  # ipmi-bmc-sim's MAX_SENSORS


class FruError(ValueError):
    """The description cannot be encoded (a string too long, a missing field, ...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardArea:
    manufacturer: str
    product: str
    serial: str
    part: str
    mfg_date: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductArea:
    manufacturer: str
    name: str
    part: str
    version: str
    serial: str
    asset: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChassisArea:
    type_code: int  # SMBIOS chassis type, e.g. 23 = rack mount chassis
    part: str
    serial: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerSupplyRecord:
    capacity_w: int
    peak_w: int
    hot_swap: bool
    input_low_v: int
    input_high_v: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FruDevice:
    fru_id: int
    name: str
    entity: str
    board: BoardArea | None = None
    product: ProductArea | None = None
    chassis: ChassisArea | None = None
    power_supply: PowerSupplyRecord | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Sensor:
    number: int
    name: str
    type: str  # a SENSOR_TYPES key
    reading: str  # a READING_TYPES key
    entity: str  # a SENSOR_ENTITIES key
    instance: int
    states: tuple[int, ...] = ()  # discrete: the offsets it supports
    thresholds: tuple[int, int, int] = (
        0,
        0,
        0,
    )  # threshold: upper non-recoverable, critical, non-critical


@dataclass(frozen=True, slots=True, kw_only=True)
class SelEvent:
    """An event vm_test logs through the guest's BMC ([[sel_event]])."""

    sensor: Sensor
    offset: int  # the event offset (sensor-specific or generic state bit)
    state: str  # what ipmitool prints for it: "Power Supply AC lost"
    deasserted: bool = False
    expect: str | None = None  # the severity of the bmc finding bee must raise


# --- encoding ---------------------------------------------------------------------------------


def zero_checksum(data: bytes) -> int:
    """The byte that makes the sum of data plus itself 0 modulo 256."""
    return (-sum(data)) & 0xFF


def encode_field(text: str) -> bytes:
    """One type/length-prefixed field, 8-bit ASCII+Latin-1 (type code 11b)."""
    raw = text.encode("latin-1", errors="strict") if text else b""
    if len(raw) > 63:
        raise FruError(f"FRU string longer than 63 bytes: {text!r}")
    if len(raw) == 1:
        # 0xC1 (type 11b, length 1) is the end-of-fields marker; the spec forbids this field.
        raise FruError(f"FRU string of one character collides with the end marker: {text!r}")
    return bytes([0xC0 | len(raw)]) + raw


def _finish_area(body: bytearray) -> bytes:
    """Add the end marker, pad to a multiple of 8 with room for the checksum, set length."""
    body.append(0xC1)
    while (len(body) + 1) % 8:
        body.append(0x00)
    body[1] = (len(body) + 1) // 8
    body.append(zero_checksum(body))
    return bytes(body)


def _minutes_since_1996(moment: datetime) -> int:
    minutes = int((moment - FRU_EPOCH).total_seconds() // 60)
    if not 0 <= minutes < 1 << 24:
        raise FruError(f"board mfg_date {moment.isoformat()} is outside 1996..2027")
    return minutes


def encode_board_area(board: BoardArea) -> bytes:
    minutes = _minutes_since_1996(board.mfg_date)
    body = bytearray([0x01, 0x00, 0x00])  # version, length (set later), language: English
    body += minutes.to_bytes(3, "little")
    for text in (board.manufacturer, board.product, board.serial, board.part, ""):  # "": file ID
        body += encode_field(text)
    return _finish_area(body)


def encode_product_area(product: ProductArea) -> bytes:
    body = bytearray([0x01, 0x00, 0x00])
    fields = (
        product.manufacturer,
        product.name,
        product.part,
        product.version,
        product.serial,
        product.asset,
        "",  # FRU file ID
    )
    for text in fields:
        body += encode_field(text)
    return _finish_area(body)


def encode_chassis_area(chassis: ChassisArea) -> bytes:
    if not 0 < chassis.type_code < 0x100:
        raise FruError(f"chassis type {chassis.type_code} is not an SMBIOS chassis type")
    body = bytearray([0x01, 0x00, chassis.type_code])
    body += encode_field(chassis.part) + encode_field(chassis.serial)
    return _finish_area(body)


def encode_power_supply_record(psu: PowerSupplyRecord, *, last: bool) -> bytes:
    """Multirecord type 0x00, Power Supply Information (FRU spec 18.1), 24 data bytes."""
    for label, watts in (("capacity_w", psu.capacity_w), ("peak_w", psu.peak_w)):
        if not 0 < watts < 1 << 12:
            raise FruError(f"power supply {label}={watts} does not fit 12 bits")
    data = bytearray()
    data += psu.capacity_w.to_bytes(2, "little")  # overall capacity, bits 11:0
    data += (0xFFFF).to_bytes(2, "little")  # peak VA: not specified
    data += bytes([0xFF, 0xFF])  # inrush current, inrush interval: not specified
    data += (psu.input_low_v * 100).to_bytes(2, "little")  # range 1, in 10 mV
    data += (psu.input_high_v * 100).to_bytes(2, "little")
    data += (0).to_bytes(2, "little") + (0).to_bytes(2, "little")  # range 2: none
    data += bytes([50, 60])  # input frequency range, Hz
    data += bytes([20])  # AC dropout tolerance, ms
    flags = 0x08 | (0x02 if psu.hot_swap else 0)  # power factor correction, hot swap
    data.append(flags)
    data += (psu.peak_w & 0x0FFF).to_bytes(2, "little")  # peak capacity; hold-up time 0 s
    data += bytes([0x00]) + (0).to_bytes(2, "little")  # combined wattage: not specified
    data.append(0x00)  # predictive fail tachometer threshold
    if len(data) != 24:
        raise AssertionError(f"power supply record is {len(data)} bytes, not 24")
    header = bytearray([0x00, (0x80 if last else 0x00) | 0x02, len(data), zero_checksum(data)])
    header.append(zero_checksum(header))
    return bytes(header + data)


def encode_fru(device: FruDevice, area_size: int = FRU_AREA_SIZE) -> bytes:
    """The FRU image of one device, padded with zeros to area_size bytes."""
    areas: list[tuple[int, bytes]] = []  # (header slot, bytes), in the spec's order
    if device.chassis is not None:
        areas.append((2, encode_chassis_area(device.chassis)))
    if device.board is not None:
        areas.append((3, encode_board_area(device.board)))
    if device.product is not None:
        areas.append((4, encode_product_area(device.product)))
    if device.power_supply is not None:
        areas.append((5, encode_power_supply_record(device.power_supply, last=True)))
    if not areas:
        raise FruError(f"FRU {device.fru_id} ({device.name}) has no area")
    header = bytearray([0x01, 0, 0, 0, 0, 0, 0])
    body = bytearray()
    for slot, area in areas:
        offset = 8 + len(body)
        header[slot] = offset // 8
        body += area
    header.append(zero_checksum(header))
    image = bytes(header) + bytes(body)
    if len(image) > area_size:
        raise FruError(f"FRU {device.fru_id} needs {len(image)} bytes, area is {area_size}")
    return image + bytes(area_size - len(image))


def encode_fru_file(devices: list[FruDevice], area_size: int = FRU_AREA_SIZE) -> bytes:
    """The frudatafile: device N at offset N * area_size; unused IDs (0 included) are zeros."""
    top = max(device.fru_id for device in devices)
    image = bytearray((top + 1) * area_size)
    for device in devices:
        start = device.fru_id * area_size
        image[start : start + area_size] = encode_fru(device, area_size)
    return bytes(image)


def encode_fru_locator(device: FruDevice, record_id: int, instance: int) -> bytes:
    """SDR type 0x11, FRU Device Locator (IPMI 2.0 table 43-7), for a logical FRU on the BMC."""
    name = device.name.encode("ascii", errors="strict")
    if not 1 <= len(name) <= 16:
        raise FruError(f"FRU name {device.name!r} must be 1 to 16 ASCII characters")
    body = bytes(
        [
            BMC_SLAVE_ADDRESS,  # device access address
            device.fru_id,  # FRU device ID
            0x80,  # logical FRU device, LUN 0, private bus 0
            0x00,  # channel 0
            0x00,  # reserved
            0x10,  # device type: FRU inventory device behind management controller
            0x00,  # device type modifier
            ENTITY_IDS[device.entity],
            instance,  # entity instance: 1, 2, ... per entity
            0x00,  # OEM
            0xC0 | len(name),  # 8-bit ASCII, length
        ]
    )
    header = bytes([record_id & 0xFF, record_id >> 8, 0x51, 0x11, len(body) + len(name)])
    return header + body + name


def encode_sensor_record(sensor: Sensor) -> bytes:
    """A compact record (discrete sensor) or a full record (threshold sensor, degrees C)."""
    name = sensor.name.encode("ascii", errors="strict")
    if not 1 <= len(name) <= 16:
        raise FruError(f"sensor name {sensor.name!r} must be 1 to 16 ASCII characters")
    key = bytes([BMC_SLAVE_ADDRESS, 0x00, sensor.number])
    entity = bytes([SENSOR_ENTITIES[sensor.entity], sensor.instance])
    kind, reading = SENSOR_TYPES[sensor.type], READING_TYPES[sensor.reading]
    if reading != READING_TYPES["threshold"]:
        # 0x63: scanning and events enabled (QEMU reads bits 6 and 5); masks: assertion,
        # deassertion and readable states are the offsets the sensor supports.
        mask = sum(1 << bit for bit in sensor.states).to_bytes(2, "little")
        body = key + entity + bytes([0x63, 0x00, kind, reading]) + mask * 3 + bytes(11)
        record_type = 0x02
    else:
        unr, ucr, unc = sensor.thresholds
        body = (
            key
            + entity
            + bytes([0x7F, 0x68, kind, reading])  # init all; thresholds readable
            + bytes([0x00, 0x00, 0x00, 0x00, 0x38, 0x38])  # upper thresholds readable/settable
            + bytes([0x00, 0x01, 0x00, 0x00, 1, 0, 0, 0, 0, 0, 0x00])  # degrees C, M=1, B=0
            + bytes([40, 80, 10, 127, 0])  # nominal, normal max/min, sensor max/min
            + bytes([unr, ucr, unc, 0, 0, 0, 2, 2, 0, 0, 0])  # thresholds, hysteresis, OEM
        )
        record_type = 0x01
    body += bytes([0xC0 | len(name)]) + name
    return bytes([0, 0, 0x51, record_type, len(body)]) + body


def encode_sdr_file(devices: list[FruDevice], sensors: tuple[Sensor, ...] = ()) -> bytes:
    """The sdrfile: the sensors, then one FRU Device Locator per device (QEMU renumbers the
    record IDs itself)."""
    records: list[bytes] = [encode_sensor_record(sensor) for sensor in sensors]
    instances: dict[str, int] = {}
    for number, device in enumerate(devices, 1):
        instances[device.entity] = instances.get(device.entity, 0) + 1
        records.append(encode_fru_locator(device, number, instances[device.entity]))
    return b"".join(records)


# --- the description --------------------------------------------------------------------------


def _text(table: dict, key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str):
        raise FruError(f"{where}: {key} must be a string")
    return value


def _int(table: dict, key: str, where: str) -> int:
    value = table.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise FruError(f"{where}: {key} must be an integer")
    return value


def _date(table: dict, key: str, where: str) -> datetime:
    raw = _text(table, key, where)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise FruError(f"{where}: {key}={raw!r} is not an ISO 8601 date") from None
    if moment.tzinfo is None:
        raise FruError(f"{where}: {key}={raw!r} needs a time zone (e.g. Z)")
    return moment.astimezone(UTC)


def parse_devices(tables: list[dict]) -> list[FruDevice]:
    """The [[fru]] tables of the hardware description as FruDevice models."""
    devices: list[FruDevice] = []
    seen: set[int] = set()
    for number, table in enumerate(tables, 1):
        where = f"fru #{number}"
        fru_id = _int(table, "id", where)
        if not 1 <= fru_id <= 254 or fru_id in seen:
            raise FruError(f"{where}: id {fru_id} must be unique and within 1..254")
        seen.add(fru_id)
        entity = _text(table, "entity", where)
        if entity not in ENTITY_IDS:
            raise FruError(f"{where}: entity {entity!r} is not one of {sorted(ENTITY_IDS)}")
        board = product = chassis = psu = None
        if (t := table.get("board")) is not None:
            board = BoardArea(
                manufacturer=_text(t, "manufacturer", where),
                product=_text(t, "product", where),
                serial=_text(t, "serial", where),
                part=_text(t, "part", where),
                mfg_date=_date(t, "mfg_date", where),
            )
        if (t := table.get("product")) is not None:
            product = ProductArea(
                manufacturer=_text(t, "manufacturer", where),
                name=_text(t, "name", where),
                part=_text(t, "part", where),
                version=_text(t, "version", where),
                serial=_text(t, "serial", where),
                asset=_text(t, "asset", where),
            )
        if (t := table.get("chassis")) is not None:
            chassis = ChassisArea(
                type_code=_int(t, "type", where),
                part=_text(t, "part", where),
                serial=_text(t, "serial", where),
            )
        if (t := table.get("power_supply")) is not None:
            psu = PowerSupplyRecord(
                capacity_w=_int(t, "capacity_w", where),
                peak_w=_int(t, "peak_w", where),
                hot_swap=bool(t.get("hot_swap", False)),
                input_low_v=_int(t, "input_low_v", where),
                input_high_v=_int(t, "input_high_v", where),
            )
        devices.append(
            FruDevice(
                fru_id=fru_id,
                name=_text(table, "name", where),
                entity=entity,
                board=board,
                product=product,
                chassis=chassis,
                power_supply=psu,
            )
        )
    if not devices:
        raise FruError("the description has no [[fru]] device")
    return devices


def parse_sensors(tables: list[dict]) -> tuple[Sensor, ...]:
    """The [[sensor]] tables of the hardware description."""
    sensors: list[Sensor] = []
    numbers: set[int] = set()
    for index, table in enumerate(tables, 1):
        where = f"sensor #{index}"
        number = _int(table, "number", where)
        if not 0 <= number <= 0xFE or number in numbers:
            raise FruError(f"{where}: number {number} must be unique and within 0..254")
        numbers.add(number)
        for key, known in (
            ("type", SENSOR_TYPES),
            ("reading", READING_TYPES),
            ("entity", SENSOR_ENTITIES),
        ):
            if _text(table, key, where) not in known:
                raise FruError(f"{where}: {key} {table[key]!r} is not one of {sorted(known)}")
        states = table.get("states", [])
        if not isinstance(states, list) or not all(
            isinstance(s, int) and 0 <= s < 15 for s in states
        ):
            raise FruError(f"{where}: states must be a list of offsets 0..14")
        threshold = table["reading"] == "threshold"
        sensors.append(
            Sensor(
                number=number,
                name=_text(table, "name", where),
                type=table["type"],
                reading=table["reading"],
                entity=table["entity"],
                instance=_int(table, "instance", where),
                states=tuple(states),
                thresholds=(
                    (
                        _int(table, "unr", where),
                        _int(table, "ucr", where),
                        _int(table, "unc", where),
                    )
                    if threshold
                    else (0, 0, 0)
                ),
            )
        )
    return tuple(sensors)


def parse_sel_events(tables: list[dict], sensors: tuple[Sensor, ...]) -> tuple[SelEvent, ...]:
    """The [[sel_event]] tables; each names a [[sensor]]."""
    by_name = {sensor.name: sensor for sensor in sensors}
    events = []
    for index, table in enumerate(tables, 1):
        where = f"sel_event #{index}"
        name = _text(table, "sensor", where)
        if name not in by_name:
            raise FruError(f"{where}: sensor {name!r} is not a [[sensor]]")
        offset = _int(table, "offset", where)
        if not 0 <= offset < 15:
            raise FruError(f"{where}: offset {offset} must be within 0..14")
        expect = table.get("expect")
        if expect not in (None, "info", "warning", "critical"):
            raise FruError(f"{where}: expect {expect!r} is not info, warning or critical")
        events.append(
            SelEvent(
                sensor=by_name[name],
                offset=offset,
                state=_text(table, "state", where),
                deasserted=bool(table.get("deasserted", False)),
                expect=expect,
            )
        )
    return tuple(events)


def platform_event_argv(event: SelEvent) -> list[str]:
    """`ipmitool raw` Platform Event Message (netfn 0x04, cmd 0x02, IPMI 2.0 29.3): generator
    0x20 (the BMC, which owns the sensor records, so `sel elist` names the sensor), event message
    revision 0x04, sensor type and number, direction and reading type, event data 1 = the offset
    (no data 2 and 3). QEMU 7.2's simulator logs it in the SEL; `ipmitool event` itself fails
    there (it asks Get Channel Info first, which the simulator does not implement)."""
    sensor = event.sensor
    direction = 0x80 if event.deasserted else 0x00
    data = (
        0x20,
        0x04,
        SENSOR_TYPES[sensor.type],
        sensor.number,
        direction | READING_TYPES[sensor.reading],
        event.offset,
        0xFF,
        0xFF,
    )
    return ["ipmitool", "raw", "0x04", "0x02", *(f"0x{byte:02x}" for byte in data)]


def write_images(
    devices: list[FruDevice], out_dir: Path, sensors: tuple[Sensor, ...] = ()
) -> tuple[Path, Path]:
    """Write fru.bin and sdr.bin into out_dir; encode both first so nothing is half-written."""
    fru_image = encode_fru_file(devices)
    sdr_image = encode_sdr_file(devices, sensors)
    out_dir.mkdir(parents=True, exist_ok=True)
    fru_path, sdr_path = out_dir / "fru.bin", out_dir / "sdr.bin"
    fru_path.write_bytes(fru_image)
    sdr_path.write_bytes(sdr_image)
    return fru_path, sdr_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m buildtools.vm.fru", description=__doc__)
    parser.add_argument("hardware", type=Path, help="hardware description (tests/vm/hardware.toml)")
    parser.add_argument("out_dir", type=Path, help="where fru.bin and sdr.bin go")
    args = parser.parse_args(argv)
    try:
        with args.hardware.open("rb") as handle:
            description = tomllib.load(handle)
        devices = parse_devices(description.get("fru", []))
        sensors = parse_sensors(description.get("sensor", []))
        fru_path, sdr_path = write_images(devices, args.out_dir, sensors)
    except OSError as exc:
        print(f"fru: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    except (tomllib.TOMLDecodeError, FruError) as exc:
        print(f"fru: {args.hardware}: {exc}", file=sys.stderr)
        return 1
    print(f"{fru_path} ({len(devices)} FRU devices), {sdr_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
