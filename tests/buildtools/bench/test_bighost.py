"""The synthetic big host: each scaled output still reads as the real tool's through the agent's
own parsers, and the whole capture replays to exactly the requested counts."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest

from bee.tools import dmidecode, ipmitool, lspci, nvidia_smi
from buildtools.bench import bighost
from buildtools.bench.bighost import BigHostError, Shape
from conftest import FIXTURES


def _seed_or_skip(tool: str, score, what: str) -> bighost.Seed:
    try:
        return bighost.pick_seed(bighost.Sources(FIXTURES), tool, score, what)
    except BigHostError as exc:
        pytest.skip(f"no fixture to scale yet: {exc}")


@pytest.fixture(scope="module")
def big_host(tmp_path_factory) -> tuple[Path, Shape]:
    """The default big host, from the committed fixtures (skipped until they hold every tool)."""
    try:
        bighost.find_seeds(bighost.Sources(FIXTURES))
    except BigHostError as exc:
        pytest.skip(f"fixtures/ lacks a seed for the big host: {exc}")
    out = tmp_path_factory.mktemp("bighost") / "host"
    bighost.generate(Shape(), out)
    return out, Shape()


# -- pieces, each read back by the agent's parser ----------------------------------------------


def test_memory_and_cpus_scale_to_distinct_slots_read_by_the_agent():
    seed = _seed_or_skip("dmidecode", bighost._dmidecode_score, "DIMMs")
    header, records = bighost.split_dmidecode(seed.text)
    shape = Shape(sockets=2, dimms=12)
    memory = dmidecode.parse(bighost.dmidecode_output(header, bighost.build_memory(records, shape)))
    slots = memory.memory.slots
    assert len(slots) == 12
    assert len({s.locator for s in slots}) == 12
    assert len({s.serial for s in slots}) == 12
    assert all(s.populated for s in slots)
    cpus = dmidecode.parse(bighost.dmidecode_output(header, bighost.build_cpus(records, 4)))
    assert len(cpus.cpu.sockets) == 4


def test_pci_functions_are_exactly_as_many_as_asked_with_unique_addresses():
    seeds = [
        bighost.Seed(p, p.read_text(encoding="utf-8"))
        for p in sorted((FIXTURES / "lspci").glob("*.txt"))
        if not p.name.endswith(".expected.json")
    ]
    shape = Shape(gpus=4, nvme=0, disks=0, sockets=2, pci=120)
    try:
        functions = bighost.build_pci(seeds, shape)
    except BigHostError as exc:
        pytest.skip(f"no lspci fixture with a GPU yet: {exc}")
    parsed = lspci.parse(bighost.lspci_output(functions))
    assert parsed.device_count == 120
    assert len({d.address for d in parsed.devices}) == 120
    gpus = [d for d in parsed.devices if d.vendor_id == "10de" and d.class_id in ("0300", "0302")]
    assert len(gpus) == 4
    assert {d.address.split(":")[0] for d in gpus} == {"0000", "0001"}  # spread over sockets


def test_gpus_clone_with_their_own_bus_ids_uuids_and_serials():
    seed = _seed_or_skip("nvidia-smi", bighost._nvidia_score, "a <gpu>")
    buses = [f"{s:04x}:{b:02x}:00.0" for s in range(2) for b in range(1, 5)]
    section = nvidia_smi.parse(bighost.nvidia_output(seed, buses))
    assert len(section.gpus) == 8
    assert section.attached_gpus == 8
    assert len({g.uuid for g in section.gpus}) == 8
    assert len({g.serial for g in section.gpus}) == 8
    assert [nvidia_smi.normalise_pci_address(g.pci_bus_id) for g in section.gpus] == buses


@pytest.mark.parametrize("psus", [1, 2, 5])
def test_fru_keeps_the_other_devices_and_has_the_asked_power_supplies(psus):
    seed = _seed_or_skip("ipmitool-fru", bighost._fru_score, "a power supply")
    fru = ipmitool.parse(bighost.fru_output(seed, psus))
    assert len(fru.power_supplies) == psus
    assert len({p.serial for p in fru.power_supplies}) == psus


def test_disk_names_follow_the_kernel():
    names = [bighost._disk_letters(i) for i in (0, 25, 26, 27, 701, 702)]
    assert names == ["a", "z", "aa", "ab", "zz", "aaa"]


def test_shapes_that_cannot_exist_are_refused():
    with pytest.raises(BigHostError, match="split over"):
        Shape(sockets=2, dimms=3).check()
    with pytest.raises(BigHostError, match="too few"):
        Shape(pci=10).check()
    with pytest.raises(BigHostError, match="at least 1"):
        Shape(sockets=0).check()
    assert asdict(Shape().scaled(4)) == {
        "sockets": 8, "dimms": 128, "disks": 96, "nvme": 32, "gpus": 32, "pci": 1200, "psus": 2,
    }  # fmt: skip


def test_missing_fixtures_are_named_in_one_line(tmp_path, capsys):
    with pytest.raises(BigHostError, match="lspci"):
        bighost.find_seeds(bighost.Sources(tmp_path))
    assert bighost.main(["--out", str(tmp_path / "host"), "--fixtures", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bighost: ")
    assert not (tmp_path / "host").exists()


def test_hand_written_fixtures_lose_to_captured_ones(tmp_path):
    (tmp_path / "lspci").mkdir()
    text = (FIXTURES / "lspci" / "h200-firecracker-vmm-nn-D.txt").read_text(encoding="utf-8")
    (tmp_path / "lspci" / "handwritten-a.txt").write_text(text + "\n" + text)
    (tmp_path / "lspci" / "real-b.txt").write_text(text)
    seed = bighost.pick_seed(bighost.Sources(tmp_path), "lspci", bighost._lspci_score, "records")
    assert seed.path.name == "real-b.txt"


# -- the whole host, through the agent -----------------------------------------------------------


def test_big_host_replays_to_the_requested_counts(big_host, validate_document):
    out, shape = big_host
    document = bighost.replay(out)
    assert bighost.problems(out, shape, document) == []
    assert asdict(bighost.count(document)) == asdict(bighost.expected_counts(shape))
    assert document["errors"] == []
    assert all(c["status"] == "ok" for c in document["collectors"].values())
    validate_document(document)  # the big host's document is a valid bee document


def test_generation_is_deterministic(big_host, tmp_path):
    out, shape = big_host
    again = tmp_path / "again"
    bighost.generate(shape, again)
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((out / f).read_bytes() == (again / f).read_bytes() for f in files)


def test_a_scaled_host_replays_to_scaled_counts(big_host, tmp_path):
    shape = Shape(sockets=4, dimms=64, disks=48, nvme=16, gpus=16, pci=600, psus=3)
    bighost.generate(shape, tmp_path / "x2")
    assert bighost.problems(tmp_path / "x2", shape) == []


def test_a_changed_collector_argv_is_reported(big_host, tmp_path):
    out, shape = big_host
    copy = tmp_path / "host"
    shutil.copytree(out, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    for entry in manifest["commands"]:
        if entry["argv"] == ["dmidecode"]:
            entry["argv"] = ["dmidecode", "-t", "4,7"]  # as if the generator were out of date
    (copy / "manifest.json").write_text(json.dumps(manifest))
    issues = bighost.problems(copy, shape)
    assert "a collector asked for `dmidecode`, which the generator does not make" in issues
    assert "no collector asked for `dmidecode -t 4,7` (did its argv change?)" in issues
    # Without SMBIOS the CPU comes from /proc/cpuinfo (one package there), the DIMMs are lost.
    assert "dimm_slots: the agent counted None, expected 32" in issues


def test_raw_capture_directories_are_read_like_fixtures(tmp_path):
    raw = tmp_path / "capture-sh"  # the layout of fixtures/capture.sh
    (raw / "fs/proc/driver/nvidia").mkdir(parents=True)
    shutil.copy(FIXTURES / "nvidia-smi" / "h200-firecracker-580.xml", raw / "nvidia-smi-q-x.out")
    shutil.copy(
        FIXTURES / "nvidia-smi" / "h200-firecracker-580.proc-version",
        raw / "fs/proc/driver/nvidia/version",
    )
    (raw / "ipmitool-fru.out").write_text("")  # the tool printed nothing: not a seed
    sources = bighost.Sources(tmp_path / "no-fixtures", (raw,))
    seed = bighost.pick_seed(sources, "nvidia-smi", bighost._nvidia_score, "a <gpu>")
    assert seed.path == raw / "nvidia-smi-q-x.out"
    assert bighost.proc_version_beside(seed.path) == raw / "fs/proc/driver/nvidia/version"
    assert sources.files("ipmitool-fru") == []
    with pytest.raises(BigHostError, match="capture-sh"):
        bighost.pick_seed(sources, "ipmitool-fru", bighost._fru_score, "a power supply")
