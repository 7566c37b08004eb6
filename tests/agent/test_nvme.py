"""nvme id-ctrl / smart-log -o json: identity, health, nvme-cli 1.x and 2.x key names and types."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee.tools.nvme import (
    DATA_UNIT_BYTES,
    decode_critical_warning,
    parse_id_ctrl,
    parse_smart_log,
)
from conftest import FIXTURES, REALWORLD, is_json_object, mangle

ID_FIXTURES = sorted(
    p for p in (FIXTURES / "nvme-id-ctrl").glob("*.json") if ".expected." not in p.name
)
LOG_FIXTURES = sorted(
    p for p in (FIXTURES / "nvme-smart-log").glob("*.json") if ".expected." not in p.name
)
REALWORLD_DIR = REALWORLD / "nvme-json"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


def test_qemu_nvme_with_nvmecli_23():
    ctrl = parse_id_ctrl((FIXTURES / "nvme-id-ctrl" / "qemu-q35-nvme0.json").read_text())
    assert (ctrl.model, ctrl.serial, ctrl.firmware) == (
        "QEMU NVMe Ctrl",
        "S5XANA0R300417",
        "7.2.22",
    )
    assert ctrl.vendor_id == "1b36" and ctrl.nvme_version == "1.4"
    assert ctrl.warning_temperature_c == 70 and ctrl.critical_temperature_c == 100
    log = parse_smart_log((FIXTURES / "nvme-smart-log" / "qemu-q35-nvme0.json").read_text())
    assert log.errors == [] and log.critical_warning == 0
    assert log.temperature_kelvin == 323 and log.temperature_c == 50
    # nvme-cli 2.3 prints the 128-bit counters as strings: "data_units_read":"7"
    assert log.data_units_read == 7 and log.data_read_bytes == 3_584_000
    assert log.power_on_hours == 0 and log.media_errors == 0


def test_nvmecli_1x_id_ctrl_with_padded_strings():
    ctrl = parse_id_ctrl(
        (FIXTURES / "nvme-id-ctrl" / "handwritten-nvmecli1x-spaced-keys.json").read_text()
    )
    assert ctrl.errors == []
    assert (ctrl.model, ctrl.serial, ctrl.firmware) == (
        "HANDWRITTEN NVME 1.x LAYOUT 1TB",
        "HANDWRITTEN0001",
        "1B2QEXM7",
    )
    assert ctrl.vendor_id == "144d" and ctrl.nvme_version == "1.4"
    assert ctrl.total_capacity_bytes == 1000204886016 and ctrl.namespace_count == 1
    assert ctrl.warning_temperature_c == 85  # wctemp 358 K


def test_nvmecli_211_verbose_warning_object_and_string_counters():
    log = parse_smart_log(
        (
            FIXTURES / "nvme-smart-log" / "handwritten-nvmecli211-verbose-warning-object.json"
        ).read_text()
    )
    assert log.critical_warning == 4 and log.critical_warning_flags == ["reliability_degraded"]
    assert log.temperature_kelvin == 318 and log.temperature_c == 45
    assert log.percentage_used == 103 and log.media_errors == 2
    assert log.power_on_hours == 35000 and log.unsafe_shutdowns == 17
    assert log.data_written_bytes == 123456789 * 512_000
    assert log.data_units_read == 2**128 - 1  # a 128-bit counter survives as an integer


def test_nvmecli_1x_bare_nan_and_float_counters():
    log = parse_smart_log(
        (FIXTURES / "nvme-smart-log" / "handwritten-nvmecli1x-nan-and-floats.json").read_text()
    )
    assert log.errors == []
    assert log.data_units_read == 4712310 and log.data_read_bytes == 4712310 * DATA_UNIT_BYTES
    assert log.temperature_c == 32 and log.available_spare_threshold_pct == 10


def test_smartctl_style_key_names_are_accepted():
    log = parse_smart_log(
        json.dumps(
            {
                "critical_warning": 1,
                "temperature": 300,
                "available_spare": 4,
                "available_spare_threshold": 10,
                "percentage_used": 12,
            }
        )
    )
    assert log.available_spare_pct == 4 and log.available_spare_threshold_pct == 10
    assert log.percentage_used == 12
    assert log.critical_warning_flags == ["available_spare_below_threshold"]


@pytest.mark.parametrize(
    ("value", "flags"),
    [
        (0, []),
        (0x01, ["available_spare_below_threshold"]),
        (0x0A, ["temperature_outside_threshold", "read_only"]),
        (0x30, ["volatile_memory_backup_failed", "persistent_memory_region_read_only"]),
        (None, []),
        (-3, []),
    ],
)
def test_critical_warning_bits_are_named(value, flags):
    assert decode_critical_warning(value) == flags


@pytest.mark.parametrize("text", ["", "{", "[]", "null", "12"])
def test_bad_input_gives_an_empty_result_with_an_error(text):
    assert parse_id_ctrl(text).errors and parse_id_ctrl(text).serial is None
    assert parse_smart_log(text).errors and parse_smart_log(text).temperature_c is None


def test_zero_kelvin_is_not_a_temperature():
    assert parse_smart_log('{"temperature": 0}').temperature_c is None


@settings(max_examples=150, deadline=10_000)
@given(st.text(max_size=400))
def test_never_raises_on_arbitrary_text(text):
    ident, health = parse_id_ctrl(text), parse_smart_log(text)
    if not is_json_object(text):  # not nvme-cli's JSON: an error, and no health to trust
        assert ident.errors and health.errors and not health.has_health


@settings(max_examples=100, deadline=10_000)
@given(json_values)
def test_never_raises_on_any_json_value(value):
    for wrapped in (value, {"critical_warning": value, "temperature": value, "ver": value}):
        parse_id_ctrl(json.dumps(wrapped))
        parse_smart_log(json.dumps(wrapped))
    keys = ("sn", "mn", "vid", "tnvmcap", "data_units_read", "avail_spare", "power_on_hours")
    parse_id_ctrl(json.dumps(dict.fromkeys(keys, value)))
    parse_smart_log(json.dumps(dict.fromkeys(keys, value)))


@settings(max_examples=60, deadline=10_000, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_never_raises_on_fixtures_with_lines_dropped_duplicated_or_cut(data):
    path = data.draw(st.sampled_from(ID_FIXTURES + LOG_FIXTURES))
    text = mangle(data, path.read_text())
    parse_id_ctrl(text)
    parse_smart_log(text)


@pytest.mark.skipif(not REALWORLD_DIR.is_dir(), reason="../shared/realworld/nvme-json is absent")
def test_realworld_outputs_parse_and_yield_what_a_person_sees():
    for path in REALWORLD_DIR.glob("*.json"):
        text = path.read_text(errors="replace")
        assert parse_id_ctrl(text).errors == [] and parse_smart_log(text).errors == []
    ident = parse_id_ctrl(
        (
            REALWORLD_DIR / "openstack_ironic-python-agent__id-ctrl-wdc-sn730-nvmecli1x.json"
        ).read_text()
    )
    assert ident.serial == "1951B3444502" and ident.model == "WDC PC SN730 SDBQNTY-256G-1001"
    assert ident.firmware == "11170101" and ident.total_capacity_bytes == 256060514304
    assert ident.nvme_version == "1.3" and ident.vendor_id == "15b7"
    log = parse_smart_log((REALWORLD_DIR / "netdata_go.d.plugin__nvme-smart-log.json").read_text())
    assert log.temperature_c == 37 and log.available_spare_pct == 100
    assert log.percentage_used == 2 and log.power_on_hours == 4974
    assert log.data_written_bytes == 136157684 * 512_000
