"""The two tiers: `-m "not slow"` needs no dataset but the small ones it generates."""

from __future__ import annotations

import pytest


def test_every_test_that_reads_the_cifar10_copy_is_in_the_slow_tier(request: pytest.FixtureRequest):
    collected = request.session.items  # this run's tests (in the fast tier the slow ones are deselected)
    unmarked = [
        item.nodeid
        for item in collected
        if "cifar10_path" in getattr(item, "fixturenames", ()) and item.get_closest_marker("slow") is None
    ]
    assert not unmarked, f"these read the CIFAR-10 copy but run in the fast tier: {unmarked[:5]}"
