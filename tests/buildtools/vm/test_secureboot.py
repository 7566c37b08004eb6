"""vm_test --secure-boot-modules' checks over what its two real guests printed
(tests/vm/secboot/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from buildtools.vm import secureboot

CAPTURE = Path(__file__).resolve().parents[2] / "vm" / "secboot"
CERT_SHA256 = "de6e5ad8a7b279679f30aac4b328e04dc1848b27f1272772f8c62e17a729bd0c"
CN = "bee module signing (per-build 2026-12-01T14:13:09Z)"


def judged(boot: str, *, enrolled: bool, cert_sha256: str = CERT_SHA256) -> list[tuple]:
    results: list[tuple] = []
    secureboot.judge(
        enrolled=enrolled,
        output=(CAPTURE / f"{boot}-guest.txt").read_text(),
        audit=json.loads((CAPTURE / f"{boot}-audit-after-loader.json").read_text()),
        boot_audit=json.loads((CAPTURE / f"{boot}-boot-audit.json").read_text()),
        cert_sha256=cert_sha256,
        cert_subject_cn=CN,
        check=lambda name, ok, detail: results.append((name, ok, detail)),
    )
    return results


@pytest.mark.parametrize(("boot", "enrolled"), [("not-enrolled", False), ("enrolled", True)])
def test_each_real_boot_passes_its_own_checks(boot: str, enrolled: bool) -> None:
    results = judged(boot, enrolled=enrolled)
    assert len(results) == 10
    assert [name for name, ok, _ in results if not ok] == []


@pytest.mark.parametrize(("boot", "enrolled"), [("not-enrolled", True), ("enrolled", False)])
def test_the_other_outcome_fails(boot: str, enrolled: bool) -> None:
    failed = {name for name, ok, _ in judged(boot, enrolled=enrolled) if not ok}
    assert any("mokutil" in name for name in failed)
    assert any("keyring" in name for name in failed)
    assert any(name.startswith("signature") for name in failed)


def test_another_certificate_is_noticed() -> None:
    results = judged("enrolled", enrolled=True, cert_sha256="0" * 64)
    failed = {name for name, ok, _ in results if not ok}
    assert failed == {
        "the image ships the certificate built beside the ISO",
        "audit: module_signing names the shipped certificate",
    }


def test_guest_output_sections() -> None:
    text = (CAPTURE / "not-enrolled-guest.txt").read_text()
    assert (
        secureboot.section_of(text, "lockdown").splitlines()[1]
        == "none [integrity] confidentiality"
    )
    record = secureboot.parse_record(secureboot.section_of(text, "record"))
    assert (record["status"], record["cause"]) == ("failed", "secure-boot")
    assert secureboot.section_of(text, "nothing") == ""
