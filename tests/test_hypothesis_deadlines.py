"""Every Hypothesis property in the suite is bounded in time (issue 20).

A "never raises" property with no deadline cannot catch a parser that hangs: the ReDoS cases
of issue 20 passed all of them. The bound is a hang guard (conftest's profile: 30 s per
example), never a timing. Checked over what this run collected, so a full run checks all.
"""

from __future__ import annotations

import pytest


def test_every_collected_property_has_a_deadline(request: pytest.FixtureRequest) -> None:
    unbounded = []
    for item in request.session.items:
        function = getattr(item, "function", None)
        used = getattr(function, "_hypothesis_internal_use_settings", None)
        if used is not None and used.deadline is None:
            unbounded.append(item.nodeid)
    assert not unbounded, "Hypothesis properties without a deadline: " + ", ".join(
        sorted(set(unbounded))[:10]
    )
