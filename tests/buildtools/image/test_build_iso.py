"""The ISO builder's fast parts (image/build_iso.py): no root, no network, no live-build."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

import pytest

from buildtools.image import build_iso, staging
from buildtools.runner import Runner

REPO = Path(__file__).resolve().parents[3]


def run_builder(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "buildtools.image.build_iso", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bad_keys_file_stops_the_build_before_anything_else(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("ssh-ed25519 this-is-not-a-key\n")
    result = run_builder("--authorized-keys", str(keys), "--out", str(tmp_path / "dist"))
    assert result.returncode == 1
    assert f"{keys}:1: not an SSH public key" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "dist" / "staging").exists()
    assert (tmp_path / "dist" / "build-iso.log").is_file()


def test_bad_spec_stops_the_build_before_anything_else(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text("spec_version = 1\n[[check]]\nid = 3\n")
    result = run_builder("--spec", str(spec), "--out", str(tmp_path / "dist"))
    assert result.returncode == 1
    assert f"{spec}:3: check[0].id: a check needs an id" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "dist" / "staging").exists()


def test_bad_upload_url_stops_the_build_before_anything_else(tmp_path: Path) -> None:
    result = run_builder("--upload-url", "10.0.0.5/bee", "--out", str(tmp_path / "dist"))
    assert result.returncode == 1
    assert "--upload-url: not an http:// or https:// URL" in result.stdout
    assert not (tmp_path / "dist" / "staging").exists()


def test_missing_vendor_dir_stops_the_build(tmp_path: Path) -> None:
    result = run_builder(
        "--vendor-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "dist"), "--no-nvidia"
    )
    assert result.returncode == 1
    assert "vendor dir" in result.stdout and "does not exist" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    result = run_builder("--squashfs-compression", "bzip9", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_not_root_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(build_iso.BuildError, match=r"needs root.*build_iso_container"):
        build_iso.check_host(1000, tmp_path / "debian_version")


def test_not_debian_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(build_iso.BuildError, match="build_iso_container"):
        build_iso.check_host(0, tmp_path / "debian_version")
    (tmp_path / "debian_version").write_text("12.8\n")
    build_iso.check_host(0, tmp_path / "debian_version")


def test_iso_name_carries_version_and_nvidia() -> None:
    assert build_iso.iso_name("0.1.0", no_nvidia=False) == "bee-0.1.0-amd64.iso"
    assert build_iso.iso_name("0.1.0", no_nvidia=True) == "bee-0.1.0-no-nvidia-amd64.iso"


def test_agent_version_is_read_from_the_package(tmp_path: Path) -> None:
    (tmp_path / "bee").mkdir()
    (tmp_path / "bee/__init__.py").write_text('"""doc"""\n\n__version__ = "1.2.3"\n')
    assert build_iso.agent_version(tmp_path) == "1.2.3"
    (tmp_path / "bee/__init__.py").write_text("VERSION = 1\n")
    with pytest.raises(build_iso.BuildError, match="no __version__"):
        build_iso.agent_version(tmp_path)


def test_mounts_under_finds_what_live_build_left_mounted() -> None:
    mounts = (
        "proc /proc proc rw 0 0\n"
        "proc /work/dist/lb-work/chroot/proc proc rw 0 0\n"
        "devpts /work/dist/lb-work/chroot/dev/pts devpts rw 0 0\n"
        "tmpfs /work/dist/lb-work\\040x/chroot tmpfs rw 0 0\n"
        "sysfs /work/dist/lb-workshop sysfs rw 0 0\n"
    )
    found = build_iso.mounts_under(Path("/work/dist/lb-work"), mounts)
    assert found == ["/work/dist/lb-work/chroot/dev/pts", "/work/dist/lb-work/chroot/proc"]


def test_workdir_gets_builder_config_and_staged_overlay(tmp_path: Path) -> None:
    overlay_before = staging.tree_digest(staging.OVERLAY_DIR)
    builder_before = staging.tree_digest(build_iso.BUILDER_DIR)
    staged = staging.fresh_staging(tmp_path / "staging")
    staging.copy_overlay(staging.OVERLAY_DIR, staged)
    staging.inject_authorized_keys(staged, None)
    workdir = tmp_path / "lb-work"
    runner = Runner(tmp_path / "build-iso.log")
    build_iso.prepare_workdir(workdir, staged, tmp_path / "cache", runner)
    after = workdir / "config/includes.chroot_after_packages"
    assert (after / "etc/systemd/system/bee-audit.service").is_file()
    assert (after / staging.PASSWORD_FALLBACK_MARKER).is_file()
    assert (workdir / "auto/config").is_file()
    assert (workdir / "cache").resolve() == (tmp_path / "cache").resolve()
    # The workdir is disposable: writing into it must not reach the sources.
    (workdir / "auto/config").write_text("changed")
    (after / "etc/systemd/system/bee-audit.service").write_text("changed")
    build_iso.remove_workdir(workdir, runner)
    assert not workdir.exists()
    assert (tmp_path / "cache").is_dir()
    assert staging.tree_digest(staging.OVERLAY_DIR) == overlay_before
    assert staging.tree_digest(build_iso.BUILDER_DIR) == builder_before


def test_hooks_must_be_linked_in_both_dirs(tmp_path: Path) -> None:
    normal = tmp_path / "config/hooks/normal"
    live = tmp_path / "config/hooks/live"
    normal.mkdir(parents=True)
    live.mkdir(parents=True)
    (normal / "9000-bee-image.hook.chroot").write_text("#!/bin/sh\n")
    with pytest.raises(build_iso.BuildError, match="hooks/live"):
        build_iso.check_hooks(tmp_path)
    (live / "0010-disable-kexec-tools.hook.chroot").write_text("#!/bin/sh\n")
    build_iso.check_hooks(tmp_path)


def test_lb_progress_pattern_matches_live_build_lines() -> None:
    lines = {
        "[2026-11-26 00:58:24] lb bootstrap ": "bootstrap",
        "[2026-11-26 00:59:56] lb chroot_prep install all-except-archives": "chroot",
        "[2026-11-26 01:05:00] lb binary_iso": "binary",
    }
    for line, stage in lines.items():
        match = build_iso._LB_SCRIPT.match(line)
        assert match is not None and match.group(1) == stage
    assert build_iso._LB_SCRIPT.match("I: lb chroot is fine") is None


def test_builder_config_pins_one_kernel_and_the_mirrors() -> None:
    auto = (build_iso.BUILDER_DIR / "auto/config").read_text()
    for option in (
        '--distribution "${DEBIAN_RELEASE}"',
        '--linux-packages "linux-image-${KERNEL_VERSION}"',
        '--linux-flavours "${KERNEL_FLAVOUR}"',
        '--mirror-chroot-security "${SECURITY_MIRROR}"',
        '--mirror-binary-security "${SECURITY_MIRROR}"',
        '--mirror-bootstrap "${MIRROR}"',
        '--chroot-squashfs-compression-type "${SQUASHFS}"',
        "--apt-recommends false",
        # the serial console last: it is /dev/console (systemd status, the units output)
        "console=tty1 console=ttyS0,115200",
    ):
        assert option in auto
    hook = (build_iso.BUILDER_DIR / "config/hooks/normal/9000-bee-image.hook.chroot").read_text()
    assert "expected exactly one kernel" in hook


def test_kernel_count_sees_through_live_builds_hard_link(tmp_path: Path) -> None:
    (tmp_path / "vmlinuz-6.1.0-56-amd64").write_bytes(b"kernel")
    (tmp_path / "vmlinuz").hardlink_to(tmp_path / "vmlinuz-6.1.0-56-amd64")
    assert build_iso.kernels_in(tmp_path) == ["vmlinuz-6.1.0-56-amd64"]
    (tmp_path / "vmlinuz-6.12.0-1-amd64").write_bytes(b"second kernel")
    assert len(build_iso.kernels_in(tmp_path)) == 2
    (tmp_path / "vmlinuz").unlink()
    (tmp_path / "vmlinuz").write_bytes(b"a copy, not a link")
    assert "vmlinuz" in build_iso.kernels_in(tmp_path)


def test_a_second_build_in_the_same_dist_is_refused(tmp_path: Path) -> None:
    with (tmp_path / "build-iso.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_builder("--out", str(tmp_path), "--no-nvidia")
    assert result.returncode == 1
    assert result.stderr.strip() == f"build_iso: another build is running in {tmp_path}"
