"""The vm_test's spec of tests/vm/hardware.toml, judged against the audit a real QEMU guest of
that hardware wrote (tests/vm/qemu-q35/bee-capture, replayed)."""

from __future__ import annotations

import json

from bee.audit import run_audit
from bee.capture import ReplayRunner
from bee.spec.evaluate import ACCEPT, PASS, REJECT, judge
from bee.spec.load import load_spec
from buildtools.vm import qemu
from buildtools.vm.hwspec import hardware_spec
from conftest import REPO

CAPTURE = REPO / "tests" / "vm" / "qemu-q35" / "bee-capture"


def _document() -> dict:
    return json.loads(json.dumps(run_audit(ReplayRunner(CAPTURE), mode="replay")))


def test_the_hardware_spec_accepts_the_qemu_guests_audit():
    hw = qemu.load_hardware(qemu.HARDWARE_FILE)
    spec = load_spec(hardware_spec(hw).encode(), "hardware-spec.toml")
    verdict = judge(spec, _document())
    assert verdict.status == ACCEPT, [r for r in verdict.checks if r.status != PASS]
    assert verdict.profile == "qemu-test-server" and len(verdict.checks) >= 14


def test_one_dimm_more_rejects_naming_memory_and_nothing_else():
    hw = qemu.load_hardware(qemu.HARDWARE_FILE)
    spec = load_spec(hardware_spec(hw, extra_dimms=1).encode(), "more-dimms.toml")
    verdict = judge(spec, _document())
    assert verdict.status == REJECT
    bad = [(r.id, r.status, r.expected, r.got) for r in verdict.checks if r.status != PASS]
    assert bad == [("MEMORY-DIMM-COUNT", "FAIL", "count 3", "2")]
