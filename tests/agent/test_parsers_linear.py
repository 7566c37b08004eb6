"""Every parser runs in linear time on any input: no backtracking regex (issue 20 #9).

A parser that burns CPU holds the GIL, and then no thread (not the one that enforces the
deadline) runs: ipmitool's FRU device line took 16 s on 1,000 spaces and minutes on 3,000.
The property builds adversarial lines (a real line's start, then a long run of what regexes
backtrack on) and measures each parse; hypothesis steers towards the slowest input found. The
time is measured and printed (run with -s), and bounded only generously, to catch a hang.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from bee.registry import parsers
from conftest import FIXTURES

PARSERS = parsers()
HANG_S = 5.0  # linear parses of these sizes take milliseconds; a backtracking one, minutes
LONG = 20_000
# What the replaced regexes backtracked on: runs of spaces, tabs, one letter, digits, openers.
RUNS = [" ", "\t", "a", "0", "[", "(ID ", "<gpu ", '<gpu id="1">', ": ", ". ", "<", "red hat "]
worst: dict[str, tuple[float, int]] = {}


def _starts(name: str) -> list[str]:
    """Starts of the lines of the parser's own fixtures (real keys, tags and separators)."""
    found = {"", "FRU Device Description : ", "Vendor:\t", "Device:\t", "<nvidia_smi_log>"}
    for path in sorted((FIXTURES / name).glob("*")):
        if path.name.endswith(".expected.json"):
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines()[:300]:
            if line.strip():
                found.add(line[: len(line) // 2 + 1])
    return sorted(found)


def _timed(name: str, text: str) -> float:
    began = time.perf_counter()
    PARSERS[name](text)
    elapsed = time.perf_counter() - began
    if elapsed > worst.get(name, (0.0, 0))[0]:
        worst[name] = (elapsed, len(text))
    return elapsed


@pytest.mark.parametrize("name", sorted(PARSERS))
# Hypothesis's hang guard; the bound that matters is the 5 s per parse below.
@settings(max_examples=40, deadline=60_000, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_parser_is_linear_on_adversarial_lines(name, data):
    start = data.draw(st.sampled_from(_starts(name)), label="start")
    run = data.draw(st.sampled_from(RUNS), label="run")
    count = data.draw(st.integers(1, LONG // len(run)), label="count")
    tail = data.draw(st.sampled_from(["", "b", "]", ")", "\n", "</gpu>", "x]"]), label="tail")
    lines = data.draw(st.integers(1, 3), label="lines")
    text = "\n".join([start + run * count + tail] * lines)
    elapsed = _timed(name, text)
    target(elapsed, label=name)
    assert elapsed < HANG_S, f"{name} took {elapsed:.1f} s on {len(text)} characters"


# The inputs that took tens of seconds to minutes before the fix (measured here, 2 cores).
KNOWN = {
    "ipmitool-fru": "FRU Device Description : a" + " " * LONG + "b\n",
    "lspci": "Slot:\t0000:00:01.0\nClass:\tBridge [0604]\nVendor:\ta" + " " * LONG + "b\n",
    "nvidia-smi": '<gpu id="1">' * (LONG // 12) + "\n",
}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_the_inputs_that_backtracked_for_minutes_parse_at_once(name):
    elapsed = _timed(name, KNOWN[name])
    print(f"{name}: {elapsed * 1000:.1f} ms on {len(KNOWN[name])} characters")
    assert elapsed < HANG_S


def test_report_the_slowest_parse_of_each_parser():
    # Runs last in this module: what the properties above measured.
    for name, (elapsed, size) in sorted(worst.items()):
        print(f"parse time {name}: worst {elapsed * 1000:.1f} ms (input of {size} characters)")
