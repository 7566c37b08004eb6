"""A built ISO's root file system, checked offline (no boot): needs root and a dist/bee-*.iso.

Extracts live/filesystem.squashfs of the newest `dist/bee-*.iso` (or BEE_TEST_ISO) and checks
what the image carries, then runs bee-sshsetup in a chroot of it, in both access modes.
Skipped, with the reason, without root, without an ISO, or without xorriso/unsquashfs.
Booting the image is `nox -s vm_test`'s job.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from buildtools.image.staging import parse_release

REPO = Path(__file__).resolve().parents[2]
BEE_UNITS = ("bee-sshsetup", "bee-network", "bee-nvidia", "bee-audit", "bee-upload")


def newest_iso() -> Path | None:
    if os.environ.get("BEE_TEST_ISO"):
        return Path(os.environ["BEE_TEST_ISO"])
    isos = sorted((REPO / "dist").glob("bee-*.iso"), key=lambda path: path.stat().st_mtime)
    return isos[-1] if isos else None


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (chroot, device nodes)"
    for tool in ("xorriso", "unsquashfs", "chroot"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    if newest_iso() is None:
        return "no dist/bee-*.iso: build one with nox -s build_iso"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or ""),
]


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    iso = newest_iso()
    assert iso is not None
    work = tmp_path_factory.mktemp("image")
    squashfs = work / "filesystem.squashfs"
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract",
         "/live/filesystem.squashfs", str(squashfs)],
        capture_output=True, check=True, timeout=300,
    )  # fmt: skip
    root = work / "root"
    subprocess.run(
        ["unsquashfs", "-q", "-n", "-d", str(root), str(squashfs)],
        capture_output=True, check=True, timeout=600,
    )  # fmt: skip
    squashfs.unlink()
    for name, major, minor in (("null", 1, 3), ("random", 1, 8), ("urandom", 1, 9)):
        node = root / "dev" / name
        if not node.exists():
            os.mknod(node, 0o20666, os.makedev(major, minor))
            node.chmod(0o666)
    return root


def chroot(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["chroot", str(root), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"},
    )


def release(root: Path) -> dict[str, str]:
    return parse_release((root / "etc/bee-release").read_text())


def test_release_file_is_complete(image_root: Path) -> None:
    values = release(image_root)
    for key in ("BEE_VERSION", "BEE_GIT_COMMIT", "DEBIAN_KERNEL_ABI", "NVIDIA_DRIVER_VERSION"):
        assert values.get(key), key
    assert values["BEE_VERSION"] in (image_root / "etc/motd").read_text()


def test_exactly_one_kernel_the_pinned_one(image_root: Path) -> None:
    abi = release(image_root)["DEBIAN_KERNEL_ABI"]
    assert sorted(path.name for path in (image_root / "boot").glob("vmlinuz-*")) == [
        f"vmlinuz-{abi}"
    ]
    assert sorted(path.name for path in (image_root / "lib/modules").iterdir()) == [abi]


def test_no_host_keys_are_baked_in(image_root: Path) -> None:
    assert not list((image_root / "etc/ssh").glob("ssh_host_*"))


def test_access_matches_the_release(image_root: Path) -> None:
    keys = image_root / "root/.ssh/authorized_keys"
    marker = image_root / "etc/bee/password-fallback"
    if release(image_root)["SSH_ACCESS"] == "authorized-keys":
        assert keys.stat().st_mode & 0o777 == 0o600
        assert keys.parent.stat().st_mode & 0o777 == 0o700
        assert not marker.exists()
    else:
        assert marker.exists()


def test_units_are_enabled(image_root: Path) -> None:
    wants = image_root / "etc/systemd/system/multi-user.target.wants"
    for unit in BEE_UNITS:
        assert (wants / f"{unit}.service").is_symlink(), unit


def test_units_verify_against_the_images_own_systemd(image_root: Path) -> None:
    units = [f"/etc/systemd/system/{unit}.service" for unit in BEE_UNITS]
    result = chroot(image_root, "systemd-analyze", "verify", "--man=no", *units,
                    "/lib/systemd/system/ssh.service")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_collector_tool_is_present(image_root: Path) -> None:
    tools = ("python3", "dmidecode", "lspci", "lsblk", "smartctl", "nvme", "ipmitool",
             "qrencode", "insmod", "modinfo", "ethtool", "dhclient", "sshd", "ip")  # fmt: skip
    for tool in tools:
        assert chroot(image_root, "sh", "-c", f"command -v {tool}").returncode == 0, tool
    assert (image_root / "usr/share/misc/pci.ids").stat().st_size > 0


def test_agent_runs_with_the_images_python(image_root: Path) -> None:
    version = release(image_root)["BEE_VERSION"]
    for argv in (("/usr/local/bin/bee", "--version"), ("python3", "-m", "bee", "--version")):
        result = chroot(image_root, *argv)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"bee {version}"


def test_image_is_lean(image_root: Path) -> None:
    docs = [
        path
        for path in (image_root / "usr/share/doc").rglob("*")
        if path.is_file() and path.name != "copyright"
    ]
    assert docs == []
    assert not (image_root / "usr/share/man").exists() or not any(
        (image_root / "usr/share/man").rglob("*.gz")
    )
    assert chroot(image_root, "dpkg-query", "-W", "apt-xapian-index").returncode != 0


@pytest.mark.parametrize("mode", ["authorized-keys", "password-fallback"])
def test_sshsetup_makes_keys_and_the_policy(image_root: Path, mode: str) -> None:
    marker = image_root / "etc/bee/password-fallback"
    policy = image_root / "etc/ssh/sshd_config.d/00-bee.conf"
    original_policy = policy.read_text()
    marker_was_there = marker.exists()
    try:
        if mode == "password-fallback":
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("test\n")
        elif marker.exists():
            marker.unlink()
        result = chroot(image_root, "/usr/local/lib/bee/bee-sshsetup")
        assert result.returncode == 0, result.stdout + result.stderr
        assert len(list((image_root / "etc/ssh").glob("ssh_host_*_key"))) >= 2
        effective = chroot(image_root, "sshd", "-T").stdout.splitlines()
        password_file = image_root / "run/bee/root-password"
        if mode == "password-fallback":
            assert "passwordauthentication yes" in effective
            secret = password_file.read_text().strip()
            assert len(secret) == 16
            assert password_file.stat().st_mode & 0o777 == 0o600
            assert secret not in result.stdout + result.stderr  # console only, not the journal
        else:
            assert "passwordauthentication no" in effective
            assert "permitrootlogin without-password" in effective
    finally:
        policy.write_text(original_policy)
        if marker_was_there:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("restored\n")
        elif marker.exists():
            marker.unlink()
        for key in (image_root / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
        shutil.rmtree(image_root / "run/bee", ignore_errors=True)


@pytest.mark.parametrize(
    ("status", "errors", "expected"),
    [
        ("rc=0\nseconds=31\n", [], "Audit: finished without errors in 31s"),
        ("rc=0\nseconds=40\n", [{"collector": "psu"}], "finished with 1 collector error(s)"),
        ("rc=1\nseconds=5\n", None, "Audit: FAILED (bee audit exit 1)"),
    ],
)
def test_motd_reports_the_audit(
    image_root: Path, status: str, errors: list[object] | None, expected: str
) -> None:
    run_bee = image_root / "run/bee"
    audit = image_root / "var/log/bee-audit.json"
    run_bee.mkdir(parents=True, exist_ok=True)
    try:
        (run_bee / "audit-status").write_text(status)
        if errors is not None:
            audit.write_text(json.dumps({"schema_version": "1", "errors": errors}))
        result = chroot(image_root, "/etc/update-motd.d/50-bee")
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout
        assert f"bee {release(image_root)['BEE_VERSION']}" in result.stdout
        assert "Re-run: bee audit" in result.stdout
    finally:
        shutil.rmtree(run_bee, ignore_errors=True)
        audit.unlink(missing_ok=True)


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        (
            {"status": "ACCEPT", "spec": "/etc/bee/spec.toml"},
            "Verdict: ACCEPT against /etc/bee/spec.toml",
        ),
        (
            {"status": "REJECT", "spec": "/etc/bee/spec.toml", "counts": {"FAIL": 1, "UNKNOWN": 2}},
            "Verdict: REJECT against /etc/bee/spec.toml (1 failed, 2 unknown; bee check",
        ),
        ("not a verdict", "Re-run: bee audit"),
    ],
)
def test_motd_reports_the_verdict(image_root: Path, verdict: object, expected: str) -> None:
    run_bee = image_root / "run/bee"
    audit = image_root / "var/log/bee-audit.json"
    run_bee.mkdir(parents=True, exist_ok=True)
    try:
        (run_bee / "audit-status").write_text("rc=0\nseconds=30\n")
        audit.write_text(json.dumps({"schema_version": 1, "errors": [], "verdict": verdict}))
        result = chroot(image_root, "/etc/update-motd.d/50-bee")
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout
    finally:
        shutil.rmtree(run_bee, ignore_errors=True)
        audit.unlink(missing_ok=True)


def test_nvidia_payload_matches_the_kernel(image_root: Path) -> None:
    values = release(image_root)
    if values["NVIDIA_DRIVER_VERSION"] == "none":
        pytest.skip("this image was built with --no-nvidia")
    abi = values["DEBIAN_KERNEL_ABI"]
    # One directory per flavour (open, proprietary), each a whole set of modules.
    flavours = [path for path in (image_root / "usr/local/lib/nvidia").iterdir() if path.is_dir()]
    flavours = [path for path in flavours if path.name != "firmware"]
    assert flavours
    for flavour in flavours:
        modules = sorted(flavour.glob("*.ko"))
        names = {path.name for path in modules}
        assert names >= {"nvidia.ko", "nvidia-modeset.ko", "nvidia-uvm.ko"}, flavour.name
        for module in modules:
            inside = "/" + str(module.relative_to(image_root))
            vermagic = chroot(image_root, "modinfo", "-F", "vermagic", inside).stdout.split()
            assert vermagic[:1] == [abi], inside
    driver = values["NVIDIA_DRIVER_VERSION"]
    for library in ("libnvidia-ml.so.1", "libcuda.so.1"):
        link = image_root / "usr/lib" / library
        assert link.is_symlink() and link.resolve().name.endswith(driver), library
    assert list((image_root / "usr/local/lib/nvidia/firmware/nvidia" / driver).glob("gsp_*.bin"))
    # No driver in a chroot: nvidia-smi must say so, not fail to find its library.
    smi = chroot(image_root, "nvidia-smi", "-L")
    assert smi.returncode != 0
    assert "couldn't communicate with the NVIDIA driver" in smi.stdout + smi.stderr


def test_nvidia_modules_are_signed_with_the_shipped_certificate(image_root: Path) -> None:
    """Every shipped module carries a signature by the certificate the image ships for MOK
    enrolment (buildtools/nvidia/signing.py), as modinfo in the image reads it."""
    nvidia = image_root / "usr/local/lib/nvidia"
    if not (nvidia / "module-signing.der").is_file():
        pytest.skip("this image ships no module-signing certificate (--no-nvidia)")
    serial = (
        chroot(
            image_root,
            "sh",
            "-c",
            "openssl x509 -inform DER -in /usr/local/lib/nvidia/"
            "module-signing.der -noout -serial 2>/dev/null || true",
        )
        .stdout.strip()
        .removeprefix("serial=")
    )
    modules = sorted(nvidia.glob("*/*.ko"))
    assert modules
    for module in modules:
        inside = "/" + str(module.relative_to(image_root))
        sig_key = chroot(image_root, "modinfo", "-F", "sig_key", inside).stdout.strip()
        assert sig_key, f"{inside} is not signed"
        if serial:  # openssl may not be in the image; the manifest names the serial too
            assert sig_key.replace(":", "") == serial.upper(), inside
        manifest = json.loads((module.parent / "manifest.json").read_text())
        assert manifest["signing"]["modules"][module.name]["sig_key"] == sig_key


def test_no_getty_autologin_as_a_missing_user(image_root: Path) -> None:
    """live-config's getty generator would autologin tty1-6 as `user`, which does not exist."""
    generator = image_root / "etc/systemd/system-generators/live-config-getty-generator"
    assert generator.is_symlink() and os.readlink(generator) == "/dev/null"


# What the boot-time cuts mask (docs/boot-time.md); each must reach the image as a /dev/null
# link, or the unit runs again at every boot.
MASKED_UNITS = (
    "live-config.service",
    "networking.service",
    "ldconfig.service",
    "systemd-journal-catalog-update.service",
    "smartmontools.service",
    "smartd.service",
    "cron.service",
    "sshd-keygen.service",
    "fstrim.timer",
    "apt-daily.timer",
)
MASKED_GENERATORS = (
    "systemd-ssh-generator",
    "systemd-sysv-generator",
    "systemd-rc-local-generator",
    "systemd-system-update-generator",
)


@pytest.mark.parametrize("name", MASKED_UNITS)
def test_boot_time_cuts_mask_the_unit(image_root: Path, name: str) -> None:
    link = image_root / "etc/systemd/system" / name
    assert link.is_symlink() and os.readlink(link) == "/dev/null", name


@pytest.mark.parametrize("name", MASKED_GENERATORS)
def test_boot_time_cuts_mask_the_generator(image_root: Path, name: str) -> None:
    link = image_root / "etc/systemd/system-generators" / name
    assert link.is_symlink() and os.readlink(link) == "/dev/null", name


def test_journal_stays_in_ram(image_root: Path) -> None:
    """Storage=volatile: no journal flush to /var on the way to SSH (docs/boot-time.md)."""
    conf = (image_root / "etc/systemd/journald.conf.d/10-bee.conf").read_text()
    assert "Storage=volatile" in conf.splitlines()
