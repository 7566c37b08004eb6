"""The image's systemd units (iso/overlay/etc/systemd/system/): verified and their invariants.

`systemd-analyze verify` runs against a scratch root holding the overlay and the host's own
unit directory, so ExecStart= paths resolve to the overlay's scripts.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "iso" / "overlay"
UNIT_DIR = OVERLAY / "etc" / "systemd" / "system"
BEE_UNITS = sorted(UNIT_DIR.glob("bee-*.service"))
HOST_UNITS = Path("/lib/systemd/system")


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT_DIR / name)
    return parser


def words(parser: configparser.ConfigParser, section: str, key: str) -> list[str]:
    return parser.get(section, key, fallback="").split()


def test_the_five_units_exist() -> None:
    assert [path.name for path in BEE_UNITS] == [
        "bee-audit.service",
        "bee-network.service",
        "bee-nvidia.service",
        "bee-sshsetup.service",
        "bee-upload.service",
    ]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.skipif(not (HOST_UNITS / "sysinit.target").exists(), reason="needs systemd units")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(OVERLAY, root, symlinks=True)
    shutil.copytree(HOST_UNITS, root / "lib/systemd/system", symlinks=True, dirs_exist_ok=True)
    units = [str(root / "etc/systemd/system" / path.name) for path in BEE_UNITS]
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", *units],
        capture_output=True,
        text=True,
        env={"SYSTEMD_LOG_LEVEL": "notice", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""


def test_nothing_waits_for_the_network() -> None:
    for path in [*BEE_UNITS, *UNIT_DIR.glob("ssh.service.d/*.conf")]:
        text = path.read_text()
        assert "network-online" not in "\n".join(
            line for line in text.splitlines() if not line.startswith("#")
        ), path


def test_sshsetup_runs_before_ssh_and_ssh_wants_it() -> None:
    setup = unit("bee-sshsetup.service")
    assert "ssh.service" in words(setup, "Unit", "Before")
    dropin = configparser.ConfigParser(strict=False)
    dropin.optionxform = str  # type: ignore[assignment,method-assign]
    dropin.read(UNIT_DIR / "ssh.service.d" / "10-bee.conf")
    assert "bee-sshsetup.service" in words(dropin, "Unit", "Wants")
    assert "bee-sshsetup.service" in words(dropin, "Unit", "After")


def test_sshsetup_runs_early_beside_sysinit_and_stops_at_shutdown() -> None:
    """Without the default dependencies (so SSH is not one unit further behind basic.target),
    but after the writable root and still part of an orderly shutdown."""
    setup = unit("bee-sshsetup.service")
    assert setup.get("Unit", "DefaultDependencies") == "no"
    assert "systemd-remount-fs.service" in words(setup, "Unit", "After")
    assert "shutdown.target" in words(setup, "Unit", "Before")
    assert "shutdown.target" in words(setup, "Unit", "Conflicts")
    for key in ("After", "Wants", "Requires"):
        assert not {"basic.target", "sysinit.target", "network.target"} & set(
            words(setup, "Unit", key)
        ), key


def test_audit_yields_the_cpu_to_logins() -> None:
    """The audit runs at a lower CPU weight than ssh.service (default 100), not at idle."""
    weight = int(unit("bee-audit.service").get("Service", "CPUWeight"))
    assert 1 <= weight < 100


def test_audit_is_ordered_after_nvidia_without_requiring_it() -> None:
    audit = unit("bee-audit.service")
    assert "bee-nvidia.service" in words(audit, "Unit", "After")
    assert "bee-nvidia.service" in words(audit, "Unit", "Wants")
    assert not audit.has_option("Unit", "Requires")
    assert not audit.has_option("Unit", "Requisite")


@pytest.mark.parametrize("name", [p.name for p in BEE_UNITS if p.name != "bee-upload.service"])
def test_oneshot_units_have_a_start_timeout(name: str) -> None:
    """Type=oneshot has no start timeout by default and holds multi-user.target."""
    service = unit(name)
    assert service.get("Service", "Type") == "oneshot"
    timeout = int(service.get("Service", "TimeoutStartSec"))
    assert 0 < timeout <= 300
    assert "multi-user.target" in words(service, "Install", "WantedBy")


def test_audit_timeout_leaves_room_for_its_deadline() -> None:
    service = unit("bee-audit.service")
    deadline = int(service.get("Service", "Environment").partition("BEE_AUDIT_DEADLINE=")[2])
    assert deadline + 30 <= int(service.get("Service", "TimeoutStartSec"))


def test_upload_runs_after_the_audit_and_holds_up_nothing() -> None:
    """Type=exec: started once bee runs, so multi-user.target never waits for the network or the
    server; only with a URL configured; bounded even if bee upload did not bound itself."""
    service = unit("bee-upload.service")
    assert service.get("Service", "Type") == "exec"
    assert words(service, "Unit", "After") == ["bee-audit.service"]
    for key in ("Before", "Requires", "Wants", "Requisite", "BindsTo"):
        assert not service.has_option("Unit", key), key
    assert service.get("Unit", "ConditionKernelCommandLine") == "|bee.upload"
    assert service.get("Unit", "ConditionPathExists") == "|/etc/bee/upload-url"
    limit = int(service.get("Service", "Environment").partition("BEE_UPLOAD_TIME_LIMIT=")[2])
    assert limit + 30 <= int(service.get("Service", "RuntimeMaxSec"))
    assert "multi-user.target" in words(service, "Install", "WantedBy")
    script = (OVERLAY / "usr/local/lib/bee/bee-upload-boot").read_text()
    assert "--status /run/bee/upload-status" in script


def test_nvidia_unit_skips_without_a_gpu_by_condition() -> None:
    service = unit("bee-nvidia.service")
    assert service.get("Service", "ExecCondition").endswith("bee-nvidia has-gpu")


def test_baked_in_ssh_policy_is_key_only() -> None:
    text = (OVERLAY / "etc/ssh/sshd_config.d/00-bee.conf").read_text()
    assert "\nPasswordAuthentication no\n" in text
    assert "\nPermitRootLogin prohibit-password\n" in text
