"""The bench's synthetic fleet: variants of the big host's real document, each planted
difference named by bee report for exactly its node, and the bench's report measurement."""

from __future__ import annotations

from pathlib import Path

import pytest

from bee.report.compare import analyse
from bee.report.load import load
from buildtools.bench import bench, bighost, fleet


@pytest.fixture(scope="module")
def big_host(tmp_path_factory) -> Path:
    host = tmp_path_factory.mktemp("bighost") / "host"
    bighost.generate(bighost.Shape(), host)
    return host


def test_bee_report_names_exactly_the_planted_nodes(big_host, tmp_path):
    plan = fleet.make_fleet(bighost.replay(big_host), tmp_path / "audits", 64)
    assert len(plan) == 7
    analysed = analyse(load([str(tmp_path / "audits")]))
    assert len(analysed.nodes) == 64 and not analysed.loaded.skipped
    assert analysed.odd() == plan
    sentences = {d.field.key: d.sentence() for d in analysed.differences}
    assert sentences["dimms"] == "node0002: 31 DIMMs in 32 slots; 63 others: 32 DIMMs in 32 slots"
    assert sentences["gpus"] == "node0004: 7 x NVIDIA H200; 63 others: 8 x NVIDIA H200"
    assert sentences["bios"].startswith("node0007, node0008: 3.6 (06/01/2023); 62 others: ")


def test_the_bench_measures_bee_report_and_checks_what_it_found(big_host, tmp_path):
    result = bench.measure_report(big_host, tmp_path, 32, 1)
    assert result["nodes"] == 32 and result["found_exactly_the_planted"] is True
    assert result["wall_s"]["n"] == 1 and result["audits_mib"] > 5
    table = bench.format_table({"report": result, "targets": bench.targets({"report": result})})
    assert "bee report over 32 big-host audits" in table
    assert "named exactly the 7 planted nodes: yes" in table
    assert "bee report, 32 audits" in table


def test_too_small_a_fleet_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 16"):
        fleet.make_fleet({}, tmp_path, 8)
