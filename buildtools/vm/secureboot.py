"""vm_test --secure-boot-modules: two boots under OVMF with Secure Boot on, with and without the
image's module-signing certificate enrolled as a MOK, and what bee-nvidia makes of each.

Both boots go through the ISO's own chain (Debian's signed shim, GRUB and kernel: `-kernel`
would bypass shim, which is what reads the MOK list) with OVMF's secboot code and Debian's
variables with Microsoft's keys enrolled (`OVMF_VARS_4M.ms.fd`). For the enrolled boot the
certificate built beside the ISO (`<iso>.module-signing.der`) is added to a copy of those
variables as a MOK with python3-virt-firmware's `virt-fw-vars --add-mok` (Debian 13 package;
on Debian 12 `pip install virt-firmware`), as MokManager would after `mokutil --import`.

The VM has no NVIDIA GPU, so bee-nvidia.service skips itself; over SSH the loader is run by hand
with `bee.nvidia=open` forced (BEE_NVIDIA_CMDLINE), then `bee audit`:

- not enrolled: insmod of the signed nvidia.ko is refused by the kernel (lockdown), the loader
  exits once with `status=failed` and `cause=secure-boot` in /run/bee/nvidia-load, and the
  audit carries the critical finding with the certificate to enrol; the rest of it is there;
- enrolled: the kernel holds the key (/proc/keys), accepts the signature, and nvidia.ko stops
  at "NVRM: No NVIDIA GPU found" (insmod: No such device): no Secure Boot cause, no advice.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from buildtools.runner import Runner

# Owner GUID of bee's MOK entry (any GUID will do; shim keeps it with the certificate).
MOK_OWNER = "4ee9d1a4-2c5b-4f1e-9a52-62ee0b5bd5e1"
MS_VARS = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
LOADER_WAIT_S = 180  # bee-nvidia.service's own TimeoutStartSec
# Over SSH, after the boot audit: the state, the loader run by hand (timed), its record, the
# kernel's words, the keys the kernel holds, and an audit with the loader's record in place.
GUEST_SCRIPT = r"""
set -u
echo "== lockdown"; cat /sys/kernel/security/lockdown
echo "== cert"; sha256sum /usr/local/lib/nvidia/module-signing.der
echo "== mok"; mokutil --sb-state; mokutil --test-key /usr/local/lib/nvidia/module-signing.der
echo "== keys"; grep -i asymmetri /proc/keys || true  # the type column is cut to 9 characters
echo "bee.nvidia=open" > /tmp/bee-secboot-cmdline
start=$(date +%s.%N)
BEE_NVIDIA_CMDLINE=/tmp/bee-secboot-cmdline timeout 170 /usr/local/lib/bee/bee-nvidia load \
    > /tmp/bee-nvidia-load.out 2>&1
rc=$?
end=$(date +%s.%N)
echo "== loader rc=$rc seconds=$(awk "BEGIN { printf \"%.1f\", $end - $start }")"
cat /tmp/bee-nvidia-load.out
echo "== record"; cat /run/bee/nvidia-load
echo "== dmesg"
dmesg | grep -E 'NVRM|Lockdown|nvidia|[Mm]odule.*(key|sig)|MOK|Machine|X.509' | tail -n 40
echo "== audit"
bee audit --output /tmp/bee-audit-secboot.json --deadline 120 --no-qr \
    > /tmp/bee-audit-secboot.out 2>&1
echo "audit rc=$?"
"""


def vars_with_mok(cert: Path, dest: Path, virt_fw_vars: str, runner: Runner) -> Path:
    """A copy of Microsoft-enrolled OVMF variables with `cert` added to shim's MokList."""
    runner.run(
        [virt_fw_vars, "-i", MS_VARS, "--add-mok", MOK_OWNER, str(cert), "-o", str(dest)],
        timeout_s=120,
    )
    return dest


def section_of(text: str, name: str) -> str:
    """The lines after `== name` up to the next `== ` marker of GUEST_SCRIPT's output."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith("== "):
            inside = line[3:].split()[0] == name if line[3:].split() else False
            if inside:
                lines.append(line)
            continue
        if inside:
            lines.append(line)
    return "\n".join(lines)


def parse_record(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and not key.startswith("="):
            values[key] = value
    return values


CheckFn = Callable[[str, bool, str], None]


def judge(
    *,
    enrolled: bool,
    output: str,
    audit: dict[str, Any] | None,
    boot_audit: dict[str, Any] | None,
    cert_sha256: str,
    cert_subject_cn: str,
    check: CheckFn,
) -> None:
    """The checks of one boot from what the guest printed and the two audits."""
    boot = (boot_audit or {}).get("boot") or {}
    check(
        "boot audit: UEFI, Secure Boot on, lockdown integrity",
        (boot.get("firmware"), boot.get("secure_boot"), boot.get("lockdown"))
        == ("uefi", True, "integrity"),
        f"firmware={boot.get('firmware')} secure_boot={boot.get('secure_boot')} "
        f"lockdown={boot.get('lockdown')}",
    )
    cert_line = section_of(output, "cert")
    check(
        "the image ships the certificate built beside the ISO",
        cert_sha256 in cert_line,
        cert_line.replace("\n", " ")[:200],
    )
    mok = section_of(output, "mok")
    check(
        "mokutil in the image: SecureBoot enabled, the key "
        + ("already enrolled" if enrolled else "not enrolled"),
        "SecureBoot enabled" in mok
        and (("is already enrolled" in mok) if enrolled else ("is not enrolled" in mok)),
        " | ".join(mok.splitlines()[1:])[:200],
    )
    keys = section_of(output, "keys")
    has_key = cert_subject_cn in keys
    check(
        "kernel keyring " + ("holds" if enrolled else "does not hold") + " the bee key",
        has_key == enrolled,
        next((line for line in keys.splitlines() if cert_subject_cn in line), "not in /proc/keys"),
    )
    loader = section_of(output, "loader")
    first = loader.splitlines()[0] if loader else "== loader (no output)"
    rc = first.partition("rc=")[2].split()[0] if "rc=" in first else "?"
    check(
        "bee-nvidia load ran once and ended (not 124: no hang)", rc not in ("124", "?", "0"), first
    )
    record = parse_record(section_of(output, "record"))
    message = record.get("message", "")
    dmesg = section_of(output, "dmesg")
    if enrolled:
        check(
            "signature accepted: nvidia.ko stops at No NVIDIA GPU found",
            record.get("status") == "failed"
            and "No such device" in message
            and "NVRM: No NVIDIA GPU found" in dmesg,
            message[:300],
        )
        check("no secure-boot cause", record.get("cause", "") == "", repr(record.get("cause")))
    else:
        check(
            "signature refused: cause=secure-boot and the kernel's words",
            record.get("status") == "failed"
            and record.get("cause") == "secure-boot"
            and any(w in message for w in ("Key was rejected", "Operation not permitted")),
            message[:300],
        )
        check(
            "the refusal names the signer",
            cert_subject_cn in message,
            message[:300],
        )
    if audit is None:
        check("audit after the loader is JSON", False, "missing or not JSON")
        return
    driver = audit.get("nvidia_driver") or {}
    findings = [
        f
        for f in audit.get("findings") or []
        if isinstance(f, dict) and f.get("source") == "nvidia_driver"
    ]
    advice = [f for f in findings if "mokutil --import" in str(f.get("message"))]
    signing = driver.get("module_signing") or {}
    check(
        "audit: module_signing names the shipped certificate",
        signing.get("cert_sha256") == cert_sha256
        and signing.get("cert_path") == "/usr/local/lib/nvidia/module-signing.der",
        json.dumps(signing)[:300],
    )
    if enrolled:
        check(
            "audit: no Secure Boot finding",
            not advice and driver.get("loader_cause") is None,
            "; ".join(str(f.get("message"))[:160] for f in findings) or "no nvidia finding",
        )
    else:
        check(
            "audit: critical Secure Boot finding with what to do",
            driver.get("loader_cause") == "secure-boot"
            and any(f.get("severity") == "critical" for f in advice),
            "; ".join(str(f.get("message"))[:400] for f in advice) or "none",
        )
    collectors = audit.get("collectors") or {}
    ok = sorted(name for name, c in collectors.items() if (c or {}).get("status") == "ok")
    wanted = sorted(
        name
        for name, c in ((boot_audit or {}).get("collectors") or {}).items()
        if (c or {}).get("status") == "ok"
    )
    check(
        "the rest of the audit goes on (same collectors ok as the boot audit)",
        bool(ok) and ok == wanted,
        f"{len(ok)} ok: {', '.join(ok)[:200]}",
    )


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def find_virt_fw_vars(given: str | None) -> str | None:
    return given or shutil.which("virt-fw-vars")


def elapsed(started: float) -> float:
    return time.monotonic() - started
