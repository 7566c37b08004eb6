"""buildtools.nvidia.build: pins, version selection, module order, fetching, CLI errors.

No root, no network, no kernel headers. The real build is `nox -s nvidia_modules`; the `.run`
path on a small scale is tests/buildtools/nvidia/test_nvidia_run.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from buildtools.nvidia import kbuild, sources
from buildtools.nvidia.build import DriverPins, ensure_nvidia, main, pinned_flavours
from buildtools.nvidia.buildroot import KernelBuildRoot
from buildtools.nvidia.cache import build_entry, cache_dir
from buildtools.nvidia.steps import NvidiaError
from buildtools.pins.versions import parse_versions

BASE = {
    "DEBIAN_RELEASE": "bookworm",
    "DEBIAN_KERNEL_ABI": "6.1.0-56-amd64",
    "DEBIAN_MIRROR": "http://127.0.0.1:9/debian",
    "DEBIAN_SECURITY_MIRROR": "http://127.0.0.1:9/debian-security",
    "NVIDIA_SOURCE": "debian",
    "NVIDIA_DRIVER_VERSION": "535.309.01",
    "NVIDIA_FLAVOUR": "proprietary",
    "NVIDIA_RUN_URL": "",
    "NVIDIA_RUN_SHA256": "",
}

# `apt-cache policy` version tables seen on deb.debian.org on 2026-11-26 (bookworm, with
# bookworm-updates and bookworm-security), as parse_policy_versions returns them.
BOOKWORM = {
    "nvidia-kernel-source": ["535.309.01-0+deb12u1", "535.261.03-1"],
    "nvidia-open-kernel-source": ["535.261.03-1"],
    "nvidia-smi": ["535.309.01-0+deb12u1", "535.261.03-1"],
    "libnvidia-ml1": ["535.309.01-0+deb12u1", "535.261.03-1"],
    "libcuda1": ["535.309.01-0+deb12u1", "535.261.03-1"],
    "firmware-nvidia-gsp": ["535.309.01-0+deb12u1", "535.261.03-1"],
    "nvidia-modprobe": ["535.309.01-0+deb12u1", "535.261.03-1"],
    "nvidia-persistenced": ["535.171.04-1~deb12u1"],
    "nvidia-driver": ["535.309.01-0+deb12u1", "535.261.03-1"],
}
# The same, trixie (with trixie-updates and trixie-security), seen on 2026-12-01: both module
# sources at the user space's version; nvidia-modprobe is from another driver.
TRIXIE = {
    "nvidia-kernel-source": ["550.163.01-2"],
    "nvidia-open-kernel-source": ["550.163.01-2"],
    "nvidia-smi": ["550.163.01-2"],
    "libnvidia-ml1": ["550.163.01-2"],
    "libcuda1": ["550.163.01-2"],
    "firmware-nvidia-gsp": ["550.163.01-2"],
    "nvidia-modprobe": ["570.133.07-1"],
    "nvidia-persistenced": ["550.163.01-1"],
    "nvidia-driver": ["550.163.01-2"],
}


def _versions(**overrides: str):  # type: ignore[no-untyped-def]
    values = {**BASE, **overrides}
    return parse_versions("".join(f"{key}={value}\n" for key, value in values.items()))


class ReplayRepo:
    """Answers `available_versions` from a recorded table; anything else is a test error."""

    mirror = BASE["DEBIAN_MIRROR"]

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    def available_versions(self, package: str) -> list[str]:
        return self.table.get(package, [])


# -- pins ----------------------------------------------------------------------------------


def test_pins_from_versions() -> None:
    pins = DriverPins.from_versions(_versions())
    assert (pins.version, pins.flavour, pins.source, pins.kernel_abi) == (
        "535.309.01",
        "proprietary",
        "debian",
        "6.1.0-56-amd64",
    )
    assert pins.cache_inputs() == {
        "version": "535.309.01",
        "flavour": "proprietary",
        "kernel_abi": "6.1.0-56-amd64",
        "source": "debian",
    }


def test_run_pins_key_the_cache_on_the_installer_digest() -> None:
    digest = "AB" * 32
    pins = DriverPins.from_versions(_versions(NVIDIA_RUN_SHA256=digest), source="run")
    assert pins.cache_inputs()["run_sha256"] == digest.lower()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"NVIDIA_FLAVOUR": "nouveau"}, "NVIDIA_FLAVOURS 'nouveau': each of"),
        ({"NVIDIA_FLAVOURS": '"open open"'}, "NVIDIA_FLAVOURS 'open open': each of"),
        ({"NVIDIA_SOURCE": "ppa"}, "NVIDIA_SOURCE 'ppa' is not one of"),
        ({"NVIDIA_DRIVER_VERSION": "latest"}, "is not like 535.309.01"),
        ({"DEBIAN_KERNEL_ABI": "6.1.0-amd64"}, "is not a Debian kernel ABI like"),
        ({"DEBIAN_KERNEL_ABI": "6.12.118-amd64"}, "is not a Debian kernel ABI like"),
        ({"NVIDIA_SOURCE": "run", "NVIDIA_RUN_SHA256": "abc"}, "is not a sha256 digest"),
    ],
)
def test_bad_pins_fail_before_any_step(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(NvidiaError, match=message):
        DriverPins.from_versions(_versions(**overrides))


def test_run_file_needs_run_source(tmp_path: Path) -> None:
    with pytest.raises(NvidiaError, match="--run-file needs --source run"):
        DriverPins.from_versions(_versions(), run_file=tmp_path / "x.run")


# -- Debian package versions ---------------------------------------------------------------


def test_pick_version_matches_upstream_exactly() -> None:
    table = BOOKWORM["nvidia-smi"]
    assert sources.pick_version(table, "535.309.01") == "535.309.01-0+deb12u1"
    assert sources.pick_version(table, "535.261.03") == "535.261.03-1"
    assert sources.pick_version(table, "535.309") is None
    assert sources.pick_version([], "535.309.01") is None


def test_proprietary_flavour_gets_one_version_everywhere() -> None:
    packages = sources.debian_packages("proprietary")
    chosen, missing = sources.select_debian_versions(
        ReplayRepo(BOOKWORM),  # type: ignore[arg-type]
        packages,
        "535.309.01",
    )
    assert missing == {}
    assert set(chosen) == set(packages)
    assert set(chosen.values()) == {"535.309.01-0+deb12u1"}


def test_open_flavour_from_debian_is_refused_with_reason() -> None:
    """bookworm's open module source is 535.261.03 while its user space is 535.309.01."""
    _chosen, missing = sources.select_debian_versions(
        ReplayRepo(BOOKWORM),  # type: ignore[arg-type]
        sources.debian_packages("open"),
        "535.309.01",
    )
    assert missing == {"nvidia-open-kernel-source": ["535.261.03-1"]}
    message = sources.mismatch_message(missing, "535.309.01", "open")
    assert "nvidia-open-kernel-source (mirror has 535.261.03)" in message
    assert "NVIDIA_FLAVOURS=proprietary" in message
    assert "\n" not in message


@pytest.mark.parametrize("flavour", ["open", "proprietary"])
def test_trixie_has_both_flavours_at_one_version(flavour: str) -> None:
    chosen, missing = sources.select_debian_versions(
        ReplayRepo(TRIXIE),  # type: ignore[arg-type]
        sources.debian_packages(flavour),
        "550.163.01",
    )
    assert missing == {}
    assert set(chosen.values()) == {"550.163.01-2"}
    optional, left_out = sources.select_debian_versions(
        ReplayRepo(TRIXIE),  # type: ignore[arg-type]
        list(sources.DEBIAN_OPTIONAL),
        "550.163.01",
    )
    assert optional == {}
    assert left_out == {"nvidia-modprobe": ["570.133.07-1"]}


def test_flavours_pin() -> None:
    assert pinned_flavours(_versions(NVIDIA_FLAVOURS='"open proprietary"')) == (
        "open",
        "proprietary",
    )
    assert pinned_flavours(_versions()) == ("proprietary",)  # the older single NVIDIA_FLAVOUR
    pins = DriverPins.from_versions(_versions(NVIDIA_FLAVOURS='"open proprietary"'))
    assert pins.flavour == "open"


def test_open_flavour_at_the_older_version_is_consistent() -> None:
    _chosen, missing = sources.select_debian_versions(
        ReplayRepo(BOOKWORM),  # type: ignore[arg-type]
        sources.debian_packages("open"),
        "535.261.03",
    )
    assert missing == {}


def test_an_optional_package_at_another_version_is_not_shipped() -> None:
    chosen, missing = sources.select_debian_versions(
        ReplayRepo(BOOKWORM),  # type: ignore[arg-type]
        list(sources.DEBIAN_OPTIONAL),
        "535.309.01",
    )
    assert chosen == {"nvidia-modprobe": "535.309.01-0+deb12u1"} and missing == {}
    assert "nvidia-persistenced" not in sources.DEBIAN_OPTIONAL


# -- kernel ABI, module order ----------------------------------------------------------------


def test_abi_and_headers_pattern() -> None:
    kbuild.check_abi("6.1.0-56-cloud-amd64")
    kbuild.check_abi("6.12.118+deb13-amd64")
    pattern = kbuild.headers_pattern("6.1.0-56-amd64")
    assert re.fullmatch(pattern, "linux-headers-6.1.0-57-amd64")
    assert not re.fullmatch(pattern, "linux-headers-6.1.0-57-cloud-amd64")
    assert not re.fullmatch(pattern, "linux-headers-6.10.0-57-amd64")
    trixie = kbuild.headers_pattern("6.12.118+deb13-amd64")
    assert re.fullmatch(trixie, "linux-headers-6.12.120+deb13-amd64")
    assert not re.fullmatch(trixie, "linux-headers-6.12.120+deb13-cloud-amd64")
    assert not re.fullmatch(trixie, "linux-headers-6.12.120+deb13-common")
    assert not re.fullmatch(trixie, "linux-headers-6.13.1+deb13-amd64")


def test_module_order_is_insmod_order() -> None:
    built = [
        "nvidia-uvm.ko",
        "nvidia-peermem.ko",
        "nvidia.ko",
        "nvidia-drm.ko",
        "nvidia-modeset.ko",
    ]
    assert kbuild.order_modules(built) == [
        "nvidia.ko",
        "nvidia-modeset.ko",
        "nvidia-uvm.ko",
        "nvidia-drm.ko",
        "nvidia-peermem.ko",
    ]
    assert kbuild.order_modules(["zz.ko", "nvidia.ko", "aa.ko"]) == ["nvidia.ko", "aa.ko", "zz.ko"]


def _elf_header(ei_class: int, machine: int) -> bytes:
    # e_ident: magic, class, data=1 (little endian), version=1, padding; e_type=2, e_machine.
    return (
        b"\x7fELF"
        + bytes([ei_class, 1, 1])
        + bytes(9)
        + (2).to_bytes(2, "little")
        + (machine.to_bytes(2, "little"))
    )


def test_32_bit_copies_from_the_installer_are_not_picked(tmp_path: Path) -> None:
    (tmp_path / "32").mkdir()
    (tmp_path / "32" / "libcuda.so.1.2.3").write_bytes(_elf_header(1, 3) + b"1.2.3")
    lib64 = tmp_path / "libcuda.so.1.2.3"
    lib64.write_bytes(_elf_header(2, 62) + b"1.2.3")
    assert kbuild.find_unique(tmp_path, "libcuda.so.1.2.3") == lib64
    assert kbuild.is_elf(tmp_path / "32" / "libcuda.so.1.2.3")
    assert not kbuild.is_elf_x86_64(tmp_path / "32" / "libcuda.so.1.2.3")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "libcuda.so.1.2.3").write_bytes(_elf_header(2, 62))
    with pytest.raises(NvidiaError, match=r"more than one libcuda\.so\.1\.2\.3"):
        kbuild.find_unique(tmp_path, "libcuda.so.1.2.3")


def test_elf_and_version_checks(tmp_path: Path) -> None:
    script = tmp_path / "nvidia-smi"
    script.write_text('#!/bin/sh\nexec /usr/lib/nvidia/current/nvidia-smi 535.309.01 "$@"\n')
    assert not kbuild.is_elf(script)
    assert kbuild.carries_version(script, "535.309.01")
    assert kbuild.find_unique(tmp_path, "nvidia-smi") is None  # a wrapper script is not shipped
    assert kbuild.find_unique(tmp_path, "nvidia-smi", elf=False) == script


# -- fetching the installer ------------------------------------------------------------------


def test_fetch_local_run_file_is_verified_and_cached(tmp_path: Path) -> None:
    local = tmp_path / "downloads" / "NVIDIA-Linux-x86_64-1.2.3.run"
    local.parent.mkdir()
    local.write_bytes(b"#!/bin/sh\n# pretend installer\n")
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    dist = tmp_path / "dist"
    path, cached = sources.fetch_run(
        url="", sha256=digest, version="1.2.3", dist_dir=dist, local_file=local
    )
    assert (path, cached) == (dist / "NVIDIA-Linux-x86_64-1.2.3.run", False)
    again, cached = sources.fetch_run(url="", sha256=digest, version="1.2.3", dist_dir=dist)
    assert (again, cached) == (path, True)


def test_fetch_local_run_file_mismatch_keeps_the_original(tmp_path: Path) -> None:
    local = tmp_path / "mine.run"
    local.write_bytes(b"not the pinned installer")
    dist = tmp_path / "dist"
    with pytest.raises(NvidiaError, match="sha256 mismatch"):
        sources.fetch_run(url="", sha256="0" * 64, version="1.2.3", dist_dir=dist, local_file=local)
    assert local.exists()  # the user's own file is never deleted
    assert list(dist.iterdir()) == []  # the copy in dist/ is gone


def test_fetch_file_url_with_empty_pin(tmp_path: Path) -> None:
    local = tmp_path / "x.run"
    local.write_bytes(b"payload")
    with pytest.raises(NvidiaError, match="NVIDIA_RUN_SHA256 is empty") as caught:
        sources.fetch_run(
            url=local.as_uri(), sha256="", version="1.2.3", dist_dir=tmp_path / "dist"
        )
    assert hashlib.sha256(b"payload").hexdigest() in str(caught.value)
    assert list((tmp_path / "dist").iterdir()) == []


def test_fetch_unreachable_url_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(NvidiaError, match=r"downloading http://127\.0\.0\.1:9/"):
        sources.fetch_run(
            url="http://127.0.0.1:9/x.run", sha256="0" * 64, version="1", dist_dir=tmp_path
        )
    assert list(tmp_path.iterdir()) == []


def test_fetch_refuses_other_schemes(tmp_path: Path) -> None:
    with pytest.raises(NvidiaError, match="only http, https and file"):
        sources.fetch_run(url="ftp://h/x.run", sha256="0" * 64, version="1", dist_dir=tmp_path)


# -- the cache seen through ensure_nvidia ---------------------------------------------------


def _fake_entry(dist: Path, inputs: dict[str, Any]) -> Path:
    final = cache_dir(dist, inputs["version"], inputs["kernel_abi"], inputs["flavour"])

    def fill(entry: Path) -> dict[str, Any]:
        (entry / "modules").mkdir()
        (entry / "modules" / "nvidia.ko").write_bytes(b"module")
        return {**inputs, "modules": ["nvidia.ko"]}

    build_entry(final, inputs, fill)
    return final


def test_ensure_nvidia_cache_hit_needs_nothing_else(tmp_path: Path) -> None:
    """A hit returns before apt, headers or compilers are touched (the mirror is unreachable)."""
    versions = _versions()
    final = _fake_entry(tmp_path, DriverPins.from_versions(versions).cache_inputs())
    lines: list[str] = []
    build = ensure_nvidia(versions, tmp_path, lines.append)
    assert build.cache_hit
    assert Path(build) == final
    assert len(lines) == 1
    assert lines[0].startswith("nvidia proprietary: cache (")
    assert lines[0].endswith(f"): hit {final}")


def test_cli_hit_prints_reused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    versions_file = tmp_path / "VERSIONS"
    versions_file.write_text("".join(f"{k}={v}\n" for k, v in BASE.items()))
    pins = DriverPins.from_versions(_versions())
    _fake_entry(tmp_path / "dist", pins.cache_inputs())
    assert main(["--versions", str(versions_file), "--dist", str(tmp_path / "dist")]) == 0
    assert "(reused)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("garbage line\n", "expected KEY=VALUE"),
        ("".join(f"{k}={v}\n" for k, v in {**BASE, "NVIDIA_FLAVOUR": "x"}.items()), "FLAVOUR"),
    ],
)
def test_cli_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    versions_file = tmp_path / "VERSIONS"
    versions_file.write_text(text)
    assert main(["--versions", str(versions_file), "--dist", str(tmp_path / "dist")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nvidia: error: ")
    assert message in err
    assert "Traceback" not in err


def test_manifest_written_by_hit_path_is_json(tmp_path: Path) -> None:
    pins = DriverPins.from_versions(_versions())
    final = _fake_entry(tmp_path, pins.cache_inputs())
    manifest = json.loads((final / "manifest.json").read_text())
    assert manifest["inputs"] == pins.cache_inputs()


# The prototype as Debian's 6.12.118+deb13 headers print it (include/linux/pci.h), and the call
# as nvidia-open-kernel-source 550.163.01-2 has it (nvidia/nv-pci.c).
PCI_H_4_ARGS = (
    "int __must_check pci_resize_resource(struct pci_dev *dev, int i, int size,\n"
    "\t\t\t\t     int exclude_bars);\n"
)
PCI_H_3_ARGS = "int __must_check pci_resize_resource(struct pci_dev *dev, int i, int size);\n"
NV_PCI_C = "resize:\n    r = pci_resize_resource(pci_dev, NV_GPU_BAR1, requested_size);\n"


@pytest.mark.parametrize(("header", "fixed"), [(PCI_H_4_ARGS, True), (PCI_H_3_ARGS, False)])
def test_open_source_fits_the_kernel_s_pci_resize_resource(
    tmp_path: Path, header: str, fixed: bool
) -> None:
    root = tmp_path / "root"
    abi = "6.12.118+deb13-amd64"
    source_dir = root / "usr/lib/modules" / abi / "source/include/linux"
    source_dir.mkdir(parents=True)
    (source_dir / "pci.h").write_text(header)
    (root / "lib").symlink_to("usr/lib")
    (root / "lib/modules" / abi / "build").mkdir()
    src = tmp_path / "nvidia-open-kernel"
    (src / "nvidia").mkdir(parents=True)
    (src / "nvidia/nv-pci.c").write_text(NV_PCI_C)
    where = KernelBuildRoot(root=root, release="trixie")
    fixes = kbuild.fit_source_to_kernel(src, abi, where)
    code = (src / "nvidia/nv-pci.c").read_text()
    assert ("requested_size, 0);" in code) == fixed
    assert len(fixes) == (1 if fixed else 0)
    assert not fixes or fixes[0].startswith("nvidia/nv-pci.c: pci_resize_resource(")
