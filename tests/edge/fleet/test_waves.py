"""Rollout waves and the abort threshold of `trainer fleet deploy --wave --abort-above`."""

from __future__ import annotations

import pytest

from edge.fleet.waves import parse_fraction, plan_waves, should_abort


@pytest.mark.parametrize(("text", "value"), [("20%", 0.2), ("0.5", 0.5), ("100%", 1.0), (" 10 % ".replace(" ", ""), 0.1)])
def test_shares_are_percentages_or_fractions(text: str, value: float) -> None:
    assert parse_fraction(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["abc", "150%", "-1", "nan"])
def test_a_share_outside_zero_to_one_is_refused_with_a_hint(text: str) -> None:
    with pytest.raises(ValueError, match="%"):
        parse_fraction(text)


def test_waves_cover_every_device_once_in_rounded_up_slices() -> None:
    devices = [f"d{i:02d}" for i in range(20)]
    waves = plan_waves(devices, 0.5)
    assert [len(w) for w in waves] == [10, 10] and sorted(sum(waves, [])) == devices
    assert [len(w) for w in plan_waves(devices[:7], 0.2)] == [2, 2, 2, 1]
    assert plan_waves(devices, None) == [devices] and plan_waves([], 0.2) == []
    assert [len(w) for w in plan_waves(devices[:3], 0.01)] == [1, 1, 1]


def test_abort_only_above_the_threshold() -> None:
    assert not should_abort(1, 10, 0.1)  # 10% is not above 10%
    assert should_abort(2, 10, 0.1)
    assert not should_abort(5, 5, None) and not should_abort(0, 0, 0.0)
    assert should_abort(1, 4, 0.0)


def test_http_spans_group_consecutive_chunks_up_to_the_limit() -> None:
    from edge.fleet.http import spans

    assert spans([0, 1, 2, 5, 6, 9], 16) == [(0, 3), (5, 2), (9, 1)]
    assert spans(list(range(40)), 16) == [(0, 16), (16, 16), (32, 8)]
    assert spans([], 16) == []
