"""The fleet report in a real browser: Debian's Chromium, headless, opens the HTML of a 64-node
fleet of the big host's document (planted differences from buildtools.bench.fleet), judged
by bee check against a spec that bee spec made from the first node. Chromium
runs in a network namespace of its own with nothing but loopback (when root), behind a proxy
that refuses everything: whatever the page or the browser asks for cannot leave the machine.
Its net log then shows whether the page asked for anything.

BEE_UPDATE_SCREENSHOT=1 also writes docs/img/fleet-report.png (review it before committing).
Skips when Chromium is absent (apt install chromium)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bee.report import html
from bee.report.compare import analyse
from bee.report.load import load
from bee.report.verdict import spec_evaluator
from buildtools.bench import bighost, fleet
from conftest import REPO, run_bee

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt install chromium)")
SCREENSHOT = REPO / "docs" / "img" / "fleet-report.png"
ISOLATE = ["unshare", "--net", "--"] if os.geteuid() == 0 and shutil.which("unshare") else []
QUIET = [
    "--headless",
    "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces it lacks
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-pings",
    "--disable-domain-reliability",
    "--proxy-server=http://127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ISOLATE, CHROMIUM, *QUIET, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def page_requests(net_log: Path) -> list[str]:
    """URLs of the requests the page started. Chromium's own (its updater, account check) have
    no origin as initiator; a file:// page's origin is opaque, "null"."""
    events = json.loads(net_log.read_text(encoding="utf-8"))["events"]
    return sorted(
        {
            e["params"]["url"]
            for e in events
            if "url" in e.get("params", {})
            and e["params"].get("initiator", "not an origin") != "not an origin"
        }
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("browser")
    bighost.generate(bighost.Shape(), base / "host")
    fleet.make_fleet(bighost.replay(base / "host"), base / "audits", 64)
    (base / "audits" / "notes.txt").write_text("racked 2026-11-30\n", encoding="utf-8")
    spec = base / "spec.toml"  # the first node is the golden machine
    made = run_bee("spec", "-o", str(spec), str(base / "audits" / "node0001.json"))
    assert made.returncode == 0, made.stderr
    judge = spec_evaluator(str(spec))
    page = base / "report.html"
    page.write_text(html.render(analyse(load([str(base / "audits")], judge))), encoding="utf-8")
    return page


def test_chromium_renders_the_report_and_runs_its_script(report, tmp_path):
    net_log = tmp_path / "net.json"
    result = chromium(tmp_path / "profile", f"--log-net-log={net_log}", "--dump-dom",
                      report.as_uri())  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    # The DOM after the page's script ran: the sort hint exists only if the script worked.
    assert "(click a column to sort)" in dom
    assert dom.count("<tr data-odd") == 7 and dom.count("<tr") == 64 + 1 + 2
    assert "DIMMs</b>: node0002: 31 DIMMs in 32 slots; 63 others: 32 DIMMs in 32 slots" in dom
    assert "notes.txt</td><td>not a .json file" in dom
    assert dom.count('class="v-ACCEPT"') == 57 and dom.count('class="v-REJECT"') == 7
    assert page_requests(net_log) == []


def test_the_net_log_check_sees_a_page_that_fetches(tmp_path):
    """The check above can fail: a page without bee's policy, with one image from elsewhere."""
    page = tmp_path / "fetching.html"
    page.write_text('<!DOCTYPE html><img src="http://203.0.113.9/x.png">', encoding="utf-8")
    net_log = tmp_path / "net.json"
    result = chromium(tmp_path / "profile", f"--log-net-log={net_log}", "--dump-dom",
                      page.as_uri())  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert page_requests(net_log) == ["http://203.0.113.9/x.png"]


def test_a_screenshot(report, tmp_path):
    shot = tmp_path / "report.png"
    result = chromium(tmp_path / "profile", "--hide-scrollbars", "--window-size=1500,1000",
                      f"--screenshot={shot}", report.as_uri())  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 50_000  # a blank 1500x1000 page is a few kB
    if os.environ.get("BEE_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, SCREENSHOT)
