"""The staged overlay (buildtools/image/staging.py): no root, no network."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from buildtools.image import staging

# Real keys, made with `ssh-keygen -t ed25519` and `ssh-keygen -t rsa -b 2048` for these tests.
ED25519 = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILCWmheLg6WSnpTDOAZbQ9/KkoFZseHzF1SVXGnAnpkt test1@bee"
)
RSA = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCjFhuutVABrWdymKwkq/4BRJPCP3F8nIyaghNSJlZB9P54sv7QaaZ"
    "ZvB82I9WV3HMwZFLz/lDQhNdN0mziPqDhnyPLYqvvg9uLvpigeO7LYZCT9QuVrwEFS8RhUeTUJCy2yxnD4Z3GcOqRrPO0"
    "kAf1Zt+JvGuEqd0xqcMKcuy+i4sMdMRMl6uvflxFSG4A4CUKM7l26KDSkptSKJtdrgKrpem9yn2dq7TEaR4v95EHr/pP"
    "rbBTRchFLXqmpENicEa2CTOf6TdUUtx7tNINBgxyAptl4rvqOQfIPkpl9pkyQ2Ep01dpAXMgNmUHwxVI9L9AZ3Jo3Cq2"
    "4AgUuVbyXKEn rsa@bee"
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- authorized keys -------------------------------------------------------------------------


def test_keys_injected_with_ssh_permissions(tmp_path: Path) -> None:
    keys = staging.validate_authorized_keys(f"# ops team\n{ED25519}\n\n{RSA}\n", "keys")
    access = staging.inject_authorized_keys(tmp_path, keys)
    target = tmp_path / "root/.ssh/authorized_keys"
    assert access == "authorized-keys"
    assert target.read_text().splitlines() == [ED25519, RSA]
    assert mode(target) == 0o600
    assert mode(target.parent) == 0o700
    assert not (tmp_path / staging.PASSWORD_FALLBACK_MARKER).exists()


def test_key_with_options_is_accepted() -> None:
    line = f'from="10.0.0.0/8",command="echo hi there" {ED25519}'
    assert staging.validate_authorized_keys(line, "keys") == [line]


def test_no_keys_sets_the_password_fallback_marker(tmp_path: Path) -> None:
    access = staging.inject_authorized_keys(tmp_path, None)
    assert access == "password-fallback"
    assert (tmp_path / staging.PASSWORD_FALLBACK_MARKER).is_file()
    assert not (tmp_path / "root/.ssh/authorized_keys").exists()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no SSH public keys"),
        ("# only a comment\n", "no SSH public keys"),
        ("hello world\n", "no SSH public key type"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n", "private key"),
        ("ssh-ed25519\n", "without key data"),
        ("ssh-ed25519 not*base64 me\n", "not base64"),
        # An RSA blob labelled ed25519: a pasted-together line.
        (f"ssh-ed25519 {RSA.split()[1]}\n", "does not hold a ssh-ed25519 key"),
        (f"{ED25519}\nssh-rsa AAAA\n", "keys:2:"),
    ],
)
def test_malformed_keys_are_a_clear_error(text: str, reason: str) -> None:
    with pytest.raises(staging.StagingError, match=reason) as info:
        staging.validate_authorized_keys(text, "keys")
    assert "\n" not in str(info.value)


def test_unreadable_keys_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(staging.StagingError, match="cannot read authorized keys"):
        staging.read_authorized_keys(tmp_path / "absent.pub")
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(staging.StagingError, match="not a text file"):
        staging.read_authorized_keys(binary)


# -- vendor binaries -------------------------------------------------------------------------


def test_vendor_binaries_are_optional(tmp_path: Path) -> None:
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    (vendor / "storcli64").write_bytes(b"\x7fELF fake but real bytes")
    (vendor / "mstflint").write_bytes(b"#!/bin/sh\n")
    (vendor / "README.md").write_text("docs")
    (vendor / "notes.txt").write_text("stray")
    staged = tmp_path / "staged"
    report = staging.inject_vendor(staged, vendor)
    assert report.found == ("storcli64", "mstflint")
    assert report.missing == ("sas2ircu", "sas3ircu")
    assert report.ignored == ("notes.txt",)
    for name in report.found:
        assert mode(staged / "usr/local/bin" / name) == 0o755
    assert not (staged / "usr/local/bin/notes.txt").exists()


def test_default_vendor_dir_may_be_absent(tmp_path: Path) -> None:
    report = staging.inject_vendor(tmp_path / "staged", tmp_path / "no-such-dir")
    assert report.found == ()
    assert report.missing == staging.VENDOR_BINARIES


def test_named_vendor_dir_must_exist(tmp_path: Path) -> None:
    with pytest.raises(staging.StagingError, match="does not exist"):
        staging.inject_vendor(tmp_path / "staged", tmp_path / "no-such-dir", must_exist=True)


# -- release file ----------------------------------------------------------------------------


def release(**changes: object) -> staging.Release:
    values: dict[str, object] = {
        "bee_version": "0.1.0",
        "bee_git_commit": "0123456789abcdef",
        "bee_git_dirty": False,
        "bee_build_time": "2026-11-26T01:00:00Z",
        "debian_release": "bookworm",
        "debian_kernel_abi": "6.1.0-56-amd64",
        "nvidia_driver_version": "535.309.01",
        "nvidia_flavour": "proprietary",
        "nvidia_source": "debian",
        "live_build_version": "1:20230502",
        "ssh_access": "authorized-keys",
    }
    values.update(changes)
    return staging.Release(**values)  # type: ignore[arg-type]


def test_release_file_carries_every_fact(tmp_path: Path) -> None:
    staging.write_release(tmp_path, release(bee_git_dirty=True))
    values = staging.parse_release((tmp_path / "etc/bee-release").read_text())
    assert values == {
        "BEE_VERSION": "0.1.0",
        "BEE_GIT_COMMIT": "0123456789abcdef",
        "BEE_GIT_DIRTY": "yes",
        "BEE_BUILD_TIME": "2026-11-26T01:00:00Z",
        "DEBIAN_RELEASE": "bookworm",
        "DEBIAN_KERNEL_ABI": "6.1.0-56-amd64",
        "NVIDIA_DRIVER_VERSION": "535.309.01",
        "NVIDIA_FLAVOUR": "proprietary",
        "NVIDIA_SOURCE": "debian",
        "LIVE_BUILD_VERSION": "1:20230502",
        "SSH_ACCESS": "authorized-keys",
    }
    motd = (tmp_path / "etc/motd").read_text()
    for fact in ("bee 0.1.0", "6.1.0-56-amd64", "535.309.01", "uncommitted", "1:20230502"):
        assert fact in motd


def test_release_file_is_shell_readable(tmp_path: Path) -> None:
    staging.write_release(tmp_path, release(live_build_version="1:2023 odd'value"))
    out = subprocess.run(
        [
            "sh",
            "-c",
            '. "$1" && printf %s "$LIVE_BUILD_VERSION"',
            "sh",
            tmp_path / "etc/bee-release",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == "1:2023 odd'value"


def test_release_without_nvidia_says_so(tmp_path: Path) -> None:
    staging.write_release(
        tmp_path, release(nvidia_driver_version="none", nvidia_flavour="none", nvidia_source="none")
    )
    values = staging.parse_release((tmp_path / "etc/bee-release").read_text())
    assert values["NVIDIA_DRIVER_VERSION"] == "none"
    assert "--no-nvidia" in (tmp_path / "etc/motd").read_text()


# -- the agent -------------------------------------------------------------------------------


def test_agent_zipapp_runs_and_keeps_the_exit_status(tmp_path: Path) -> None:
    build = staging.package_agent(staging.AGENT_DIR, tmp_path)
    assert build.rebuilt
    with zipfile.ZipFile(build.zipapp) as archive:
        names = archive.namelist()
    assert "bee/cli.py" in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert build.zipapp.read_bytes().startswith(b"#!/usr/bin/python3\n")
    version = subprocess.run(
        [sys.executable, str(build.zipapp), "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert version.returncode == 0
    assert version.stdout.startswith("bee ")
    usage = subprocess.run(
        [sys.executable, str(build.zipapp), "--no-such-option"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert usage.returncode == 2


def test_agent_zipapp_ends_through_bees_own_exit_path(tmp_path: Path) -> None:
    # Review B.1.7: the zipapp's __main__ was sys.exit(main()), not agent/bee/__main__.py.
    build = staging.package_agent(staging.AGENT_DIR, tmp_path / "out")
    with zipfile.ZipFile(build.zipapp) as archive:
        entry = archive.read("__main__.py").decode()
    assert 'run_module("bee", run_name="__main__"' in entry
    bindir, pids = tmp_path / "bin", tmp_path / "pids"
    bindir.mkdir()
    (bindir / "dmidecode").write_text(f"#!/bin/sh\necho $$ >> {pids}\nexec sleep 1000\n")
    (bindir / "dmidecode").chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")
    bee = subprocess.Popen(
        [sys.executable, str(build.zipapp), "audit", "-o", str(tmp_path / "a.json")],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    give_up = time.monotonic() + 60
    while not (pids.exists() and pids.read_text().split()) and time.monotonic() < give_up:
        time.sleep(0.02)
    bee.send_signal(signal.SIGTERM)
    _, stderr = bee.communicate(timeout=60)
    assert bee.returncode == 128 + signal.SIGTERM, stderr
    assert "bee: stopped by SIGTERM" in stderr.splitlines()


def test_agent_is_rebuilt_only_when_a_source_is_newer(tmp_path: Path) -> None:
    agent = tmp_path / "agent"
    package = agent / "bee"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('__version__ = "9.9"\n')
    (package / "cli.py").write_text("def main():\n    return 0\n")
    out = tmp_path / "out"
    first = staging.package_agent(agent, out)
    assert first.rebuilt
    second = staging.package_agent(agent, out)
    assert not second.rebuilt
    later = time.time() + 5
    os.utime(package / "cli.py", (later, later))
    assert staging.package_agent(agent, out).rebuilt


def test_missing_agent_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(staging.StagingError, match="no agent"):
        staging.package_agent(tmp_path, tmp_path / "out")


def test_agent_lands_as_command_and_package(tmp_path: Path) -> None:
    build = staging.package_agent(staging.AGENT_DIR, tmp_path / "out")
    staged = tmp_path / "staged"
    staging.inject_agent(staged, build.zipapp, staging.AGENT_DIR / "bee")
    assert mode(staged / "usr/local/bin/bee") == 0o755
    package = staged / "usr/lib/python3/dist-packages/bee"
    assert (package / "cli.py").is_file()
    assert not list(package.rglob("__pycache__"))
    out = subprocess.run(
        [sys.executable, "-S", "-E", "-m", "bee", "--version"],
        cwd=package.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("bee ")


# -- NVIDIA payload --------------------------------------------------------------------------


def nvidia_cache(
    root: Path, flavour: str = "proprietary", smi: bytes = b"smi", *, signed: bool = False
) -> Path:
    """A cache dir laid out as buildtools/nvidia/build.py writes it (contents are placeholders);
    `signed`: as buildtools/nvidia/signing.py leaves a signed entry, with its certificate."""
    cache = root / f"nvidia-535.309.01-6.1.0-56-amd64-{flavour}{'-signed' if signed else ''}"
    (cache / "modules").mkdir(parents=True)
    if signed:
        (cache / "module-signing.der").write_bytes(b"0\x82 der")
        (cache / "module-signing.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    for name in ("nvidia.ko", "nvidia-modeset.ko", "nvidia-uvm.ko"):
        (cache / "modules" / name).write_bytes(f"{flavour} {name}".encode())
    (cache / "supported-gpus.json").write_text('{"chips": []}')
    (cache / "bin").mkdir()
    (cache / "bin/nvidia-smi").write_bytes(smi)
    (cache / "lib").mkdir()
    (cache / "lib/libnvidia-ml.so.535.309.01").write_bytes(b"ml")
    (cache / "lib/libnvidia-ml.so.1").symlink_to("libnvidia-ml.so.535.309.01")
    firmware = cache / "firmware/nvidia/535.309.01"
    firmware.mkdir(parents=True)
    (firmware / "gsp_tu10x.bin").write_bytes(b"gsp")
    files = {
        str(path.relative_to(cache)): staging._sha256(path)
        for path in cache.rglob("*")
        if path.is_file() and not path.is_symlink()
    }
    manifest = {
        "version": "535.309.01",
        "flavour": flavour,
        "source": "debian",
        "modules": ["nvidia.ko", "nvidia-modeset.ko", "nvidia-uvm.ko"],
        "sha256": files,
    }
    if signed:
        manifest["signing"] = {"origin": "per-build", "cert_sha256": "ab" * 32}
    (cache / "manifest.json").write_text(__import__("json").dumps(manifest))
    return cache


def test_nvidia_payload_lands_where_the_units_look(tmp_path: Path) -> None:
    caches = [nvidia_cache(tmp_path, "open"), nvidia_cache(tmp_path, "proprietary")]
    staged = tmp_path / "staged"
    payload = staging.inject_nvidia(staged, caches)
    assert payload.version == "535.309.01"
    assert payload.flavours == ("open", "proprietary")
    assert payload.modules == ("nvidia.ko", "nvidia-modeset.ko", "nvidia-uvm.ko")
    for flavour in payload.flavours:
        module = staged / f"usr/local/lib/nvidia/{flavour}/nvidia-uvm.ko"
        assert module.read_bytes() == f"{flavour} nvidia-uvm.ko".encode()
        assert (staged / f"usr/local/lib/nvidia/{flavour}/manifest.json").is_file()
    assert (staged / "usr/local/lib/nvidia/supported-gpus.json").is_file()
    assert mode(staged / "usr/local/bin/nvidia-smi") == 0o755
    link = staged / "usr/lib/libnvidia-ml.so.1"
    assert link.is_symlink() and os.readlink(link) == "libnvidia-ml.so.535.309.01"
    assert (staged / "usr/local/lib/nvidia/firmware/nvidia/535.309.01/gsp_tu10x.bin").is_file()


def test_signed_entries_ship_their_certificate(tmp_path: Path) -> None:
    caches = [nvidia_cache(tmp_path, f, signed=True) for f in ("open", "proprietary")]
    staged = tmp_path / "staged"
    payload = staging.inject_nvidia(staged, caches)
    assert payload.signing == {"origin": "per-build", "cert_sha256": "ab" * 32}
    for name in staging.MODULE_SIGNING_CERTS:
        shipped = staged / "usr/local/lib/nvidia" / name
        assert shipped.read_bytes() == (caches[0] / name).read_bytes()
        assert mode(shipped) == 0o644
    unsigned = staging.inject_nvidia(tmp_path / "plain", [nvidia_cache(tmp_path / "u")])
    assert unsigned.signing is None
    assert not (tmp_path / "plain/usr/local/lib/nvidia/module-signing.der").exists()


def test_altered_nvidia_cache_is_refused(tmp_path: Path) -> None:
    cache = nvidia_cache(tmp_path)
    (cache / "modules/nvidia.ko").write_bytes(b"tampered")
    with pytest.raises(staging.StagingError, match=r"modules/nvidia.ko is missing or altered"):
        staging.inject_nvidia(tmp_path / "staged", [cache])


def test_flavours_must_share_one_user_space(tmp_path: Path) -> None:
    caches = [nvidia_cache(tmp_path, "open"), nvidia_cache(tmp_path, "proprietary", b"other")]
    with pytest.raises(staging.StagingError, match="differ outside modules/"):
        staging.inject_nvidia(tmp_path / "staged", caches)


# -- the source overlay ----------------------------------------------------------------------


def test_staging_leaves_the_source_overlay_untouched(tmp_path: Path) -> None:
    before = staging.tree_digest(staging.OVERLAY_DIR)
    staged = staging.fresh_staging(tmp_path / "staging")
    staging.copy_overlay(staging.OVERLAY_DIR, staged)
    staging.inject_authorized_keys(staged, [ED25519])
    staging.write_release(staged, release())
    # Writing through the staged copy must not reach the source (no hard links, no symlinks).
    for path in staged.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.write_text("changed")
    assert staging.tree_digest(staging.OVERLAY_DIR) == before
    assert (staged / "etc/systemd/system/bee-audit.service").exists()


def test_tree_digest_sees_content_and_mode_changes(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("one")
    first = staging.tree_digest(tmp_path)
    (tmp_path / "a").chmod(0o755)
    second = staging.tree_digest(tmp_path)
    (tmp_path / "a").write_text("two")
    assert len({first, second, staging.tree_digest(tmp_path)}) == 3


# -- the hardware spec (build_iso --spec) -------------------------------------------------------

EXAMPLE_SPEC = staging.REPO_ROOT / "docs" / "examples" / "hgx-8gpu.spec.toml"


def test_a_spec_is_checked_with_the_agents_loader_and_baked_in(tmp_path: Path) -> None:
    data = staging.read_spec(EXAMPLE_SPEC)
    staged = tmp_path / "staging"
    staged.mkdir()
    staging.inject_spec(staged, data)
    target = staged / "etc/bee/spec.toml"
    assert target.read_bytes() == EXAMPLE_SPEC.read_bytes()
    assert mode(target) == 0o644


def test_a_bad_spec_stops_the_build_naming_file_line_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('spec_version = 1\n[[check]]\nid = "A"\nselect = "cpu"\ncuont = 1\n')
    with pytest.raises(staging.StagingError, match=r"bad\.toml:5: check\[0\]\.cuont: unknown key"):
        staging.read_spec(bad)
    with pytest.raises(staging.StagingError, match="cannot read spec"):
        staging.read_spec(tmp_path / "missing.toml")


def test_an_upload_url_is_checked_with_the_agents_rules_and_baked_in(tmp_path: Path) -> None:
    url = staging.check_upload_url(" http://10.0.0.5/bee/ ")
    staged = tmp_path / "staging"
    staged.mkdir()
    staging.inject_upload_url(staged, url)
    target = staged / "etc/bee/upload-url"
    assert target.read_text() == "http://10.0.0.5/bee/\n"
    assert mode(target) == 0o644
    with pytest.raises(staging.StagingError, match="--upload-url: not an http"):
        staging.check_upload_url("ftp://10.0.0.5/bee/")
