"""iso/builder/smoketest.sh, the parts that run outside a booted image.

The whole script runs inside the image (nox -s vm_test); here each check that reads files runs
against documents written the way the image writes them, selected with BEE_SMOKE_ONLY.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bee.registry import section_names
from buildtools.image import staging
from conftest import run_bee

REPO = Path(__file__).resolve().parents[2]
SMOKETEST = REPO / "iso" / "builder" / "smoketest.sh"
FIXTURES = REPO / "fixtures"
QEMU_CAPTURE = REPO / "tests" / "vm" / "qemu-q35" / "bee-capture"
SECTIONS = section_names()


def smoke(checks: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(SMOKETEST)],
        env={**os.environ, "BEE_SMOKE_ONLY": checks, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stdout.splitlines() if not line.startswith("smoke:")]


@pytest.fixture(scope="module")
def real_doc(tmp_path_factory) -> dict[str, object]:
    """A document as bee writes it: `bee audit --replay` of the QEMU guest's capture."""
    out = tmp_path_factory.mktemp("audit") / "audit.json"
    result = run_bee("audit", "--replay", str(QEMU_CAPTURE), "--no-qr", "-o", str(out))
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


def check_audit(tmp_path: Path, doc: object) -> subprocess.CompletedProcess[str]:
    audit = tmp_path / "audit.json"
    audit.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return smoke("check_audit", BEE_SMOKE_AUDIT=str(audit))


def test_audit_check_passes_on_a_real_document(tmp_path: Path, real_doc) -> None:
    result = check_audit(tmp_path, real_doc)
    assert result.returncode == 0, result.stdout
    read = sum(1 for entry in real_doc["collectors"].values() if entry["status"] == "ok")
    assert lines(result) == [
        f"PASS audit-file: {tmp_path / 'audit.json'}: schema 1, {read} of {len(SECTIONS)} "
        "sections read, no collector errors"
    ]


def hollowed(doc: dict[str, object]) -> dict[str, object]:
    """Every section null, the collectors still saying ok."""
    return {**doc, **dict.fromkeys(doc["collectors"])}  # type: ignore[arg-type]


def with_status(doc: dict[str, object], **statuses: str) -> dict[str, object]:
    collectors = {k: dict(v) for k, v in doc["collectors"].items()}  # type: ignore[union-attr]
    for name, value in statuses.items():
        collectors[name]["status"] = value
    nulls = {name: None for name, value in statuses.items() if value != "ok"}
    return {**doc, "collectors": collectors, **nulls}


FIFTY_ERRORS = [{"collector": "psu", "message": "ipmitool: exit 1"}] * 50


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        # Content (review B.1.16): each of these passed before.
        (hollowed, "ok but no section: board, cpu, memory"),
        (lambda d: {**d, "errors": FIFTY_ERRORS}, "50 collector error(s): psu: ipmitool: exit 1;"),
        (lambda d: {**d, "schema_version": "1"}, "schema_version '1' is not a version number"),
        (
            lambda d: with_status(d, storage="timeout", bmc="failed"),
            "collectors that did not finish: storage timeout, bmc failed",
        ),
        (lambda d: with_status(d, cpu="empty"), "not read: cpu"),
        # Form.
        (lambda d: "{not json", "not valid JSON"),
        (lambda d: "[]", "top level is not an object"),
        (lambda d: {k: v for k, v in d.items() if k != "collectors"}, "missing keys: collectors"),
        (lambda d: {**d, "collectors": []}, "collectors is not a non-empty object"),
        (lambda d: {**d, "collectors": {"nic": {}}}, "missing sections: nic"),
        (lambda d: {**d, "errors": "none"}, "errors is not a list"),
        (lambda d: "", "missing or empty"),
    ],
)
def test_audit_check_fails_on_a_bad_document(tmp_path: Path, real_doc, change, reason) -> None:
    result = check_audit(tmp_path, change(real_doc))
    assert result.returncode == 1, result.stdout
    [line] = lines(result)
    assert line.startswith("FAIL audit-file:") and reason in line


def release_file(tmp_path: Path, **changes: str) -> Path:
    values = {
        "bee_version": "0.1.0",
        "bee_git_commit": "abc",
        "bee_git_dirty": False,
        "bee_build_time": "2026-11-26T01:00:00Z",
        "debian_release": "bookworm",
        "debian_kernel_abi": "6.1.0-56-amd64",
        "nvidia_driver_version": "none",
        "nvidia_flavour": "none",
        "nvidia_source": "none",
        "live_build_version": "1:20230502",
        "ssh_access": "authorized-keys",
    }
    values.update(changes)
    staging.write_release(tmp_path, staging.Release(**values))  # type: ignore[arg-type]
    return tmp_path / "etc/bee-release"


def test_release_check_compares_with_the_installed_bee(tmp_path: Path) -> None:
    release = release_file(tmp_path)
    bin_dir = tmp_path / "bin"
    build = staging.package_agent(staging.AGENT_DIR, tmp_path / "agent")
    staging.inject_agent(tmp_path / "root", build.zipapp, staging.AGENT_DIR / "bee")
    bin_dir.mkdir()
    (bin_dir / "bee").symlink_to(tmp_path / "root/usr/local/bin/bee")
    version = subprocess.run(
        [str(bin_dir / "bee"), "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    release = release_file(tmp_path, bee_version=version)
    env = {"BEE_SMOKE_RELEASE": str(release), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = smoke("check_release", **env)
    assert result.returncode == 0, result.stdout
    assert lines(result)[0].startswith(f"PASS release: {release}: bee {version}, kernel 6.1.0-56")
    mismatched = release_file(tmp_path, bee_version="0.0.0-other")
    result = smoke("check_release", **{**env, "BEE_SMOKE_RELEASE": str(mismatched)})
    assert result.returncode == 1
    assert "FAIL bee-version" in result.stdout


def test_missing_release_file_fails(tmp_path: Path) -> None:
    result = smoke("check_release", BEE_SMOKE_RELEASE=str(tmp_path / "none"))
    assert result.returncode == 1
    assert lines(result) == [f"FAIL release: {tmp_path / 'none'} missing or empty"]


def test_nvidia_files_skip_on_a_no_nvidia_image(tmp_path: Path) -> None:
    result = smoke("check_nvidia_files", BEE_SMOKE_RELEASE=str(release_file(tmp_path)))
    assert result.returncode == 0
    assert lines(result) == ["SKIP nvidia-files: this image was built without NVIDIA (--no-nvidia)"]


def test_nvidia_files_fail_when_the_release_promises_a_driver(tmp_path: Path) -> None:
    release = release_file(
        tmp_path, nvidia_driver_version="550.163.01", nvidia_flavour="open proprietary"
    )
    result = smoke(
        "check_nvidia_files",
        BEE_SMOKE_RELEASE=str(release),
        BEE_SMOKE_NVIDIA_DIR=str(tmp_path / "nvidia"),
        BEE_SMOKE_LIB_DIR=str(tmp_path / "lib"),
    )
    assert result.returncode == 1
    out = result.stdout
    assert "FAIL nvidia-modules-shipped-open: no " in out
    assert "FAIL nvidia-modules-shipped-proprietary: no " in out
    assert "FAIL nvidia-supported-gpus: " in out
    assert "FAIL nvidia-lib-libnvidia-ml.so.1" in out and "FAIL nvidia-lib-libcuda.so.1" in out


def test_nvidia_flavour_and_list_pass_with_the_real_list_and_agent(tmp_path: Path) -> None:
    """The driver's real supported-gpus.json and the agent on PATH, as on the image."""
    nvidia = tmp_path / "nvidia"
    nvidia.mkdir()
    listed = FIXTURES / "supported-gpus" / "debian-trixie-nvidia-driver-550.163.01.json.gz"
    (nvidia / "supported-gpus.json").write_bytes(gzip.decompress(listed.read_bytes()))
    build = staging.package_agent(staging.AGENT_DIR, tmp_path / "agent")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy2(build.zipapp, bin_dir / "bee")
    release = release_file(tmp_path, nvidia_driver_version="550.163.01", nvidia_flavour="open")
    result = smoke(
        "check_nvidia_files",
        BEE_SMOKE_RELEASE=str(release),
        BEE_SMOKE_NVIDIA_DIR=str(nvidia),
        BEE_SMOKE_LIB_DIR=str(tmp_path / "lib"),
        PATH=f"{bin_dir}:{os.environ['PATH']}",
    )
    assert f"PASS nvidia-supported-gpus: {nvidia}/supported-gpus.json: 2224 chips" in result.stdout
    # This host has no NVIDIA modules in /usr/local/lib/nvidia: nothing to load, said so.
    assert "PASS nvidia-flavour: none" in result.stdout


def test_nvidia_library_links_are_checked(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "libcuda.so.535.309.01").write_bytes(b"")
    (lib / "libcuda.so.1").symlink_to("libcuda.so.535.309.01")
    (lib / "libnvidia-ml.so.1").symlink_to("libnvidia-ml.so.535.309.01")  # dangling
    release = release_file(tmp_path, nvidia_driver_version="535.309.01")
    result = smoke(
        "check_nvidia_files",
        BEE_SMOKE_RELEASE=str(release),
        BEE_SMOKE_NVIDIA_DIR=str(tmp_path / "nvidia"),
        BEE_SMOKE_LIB_DIR=str(lib),
    )
    assert f"PASS nvidia-lib-libcuda.so.1: {lib}/libcuda.so.1 -> libcuda.so.535.309.01" in (
        result.stdout
    )
    assert "FAIL nvidia-lib-libnvidia-ml.so.1" in result.stdout


def pci_device(root: Path, address: str, vendor: str, klass: str) -> None:
    device = root / address
    device.mkdir(parents=True)
    (device / "vendor").write_text(f"{vendor}\n")
    (device / "class").write_text(f"{klass}\n")


def test_nvidia_gpu_checks_skip_without_a_gpu(tmp_path: Path) -> None:
    # A bus as sysfs shows it: a VGA card that is not NVIDIA, an NVIDIA GPU's audio function.
    pci_device(tmp_path, "0000:00:01.0", "0x1234", "0x030000")
    pci_device(tmp_path, "0000:01:00.1", "0x10de", "0x040300")
    result = smoke("check_nvidia_gpus", BEE_SMOKE_SYS_PCI=str(tmp_path))
    assert result.returncode == 0
    assert [line.split(":")[0] for line in lines(result)] == [
        "SKIP nvidia-modules-loaded",
        "SKIP nvidia-smi-gpus",
        "SKIP nvidia-devices",
        "SKIP nvidia-audit",
    ]


def test_nvidia_gpu_counts_3d_controllers(tmp_path: Path) -> None:
    """An H200 is a 3D controller (class 0x0302), seen on a real GPU host as 0000:00:06.0."""
    pci_device(tmp_path, "0000:00:06.0", "0x10de", "0x030200")
    pci_device(tmp_path, "0000:00:07.0", "0x10de", "0x030000")
    result = smoke(
        "check_nvidia_gpus",
        BEE_SMOKE_SYS_PCI=str(tmp_path),
        BEE_SMOKE_AUDIT=str(tmp_path / "no-audit.json"),
    )
    # Whatever this host has loaded, two GPUs on the bus are never SKIPped.
    assert "SKIP" not in result.stdout
    assert "nvidia-smi-gpus" in result.stdout


def test_unknown_check_is_a_failure() -> None:
    result = smoke("check_everything")
    assert result.returncode == 1
    assert lines(result) == ["FAIL smoke: unknown check check_everything"]


def test_summary_line_counts() -> None:
    result = smoke("check_everything check_everything")
    assert result.stdout.splitlines()[-1] == "smoke: 0 pass, 2 fail, 0 skip"
