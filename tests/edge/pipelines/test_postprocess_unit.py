"""PostProcessor (edge/pipelines/postprocess.py): every answer below is worked out by hand from the
module's documented order of operations (smoothing -> threshold -> hold). Scores are chosen to be exact
in float32 (0.25, 0.5, 0.75 ...) so a boundary is really a boundary."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from edge.pipelines.postprocess import METHODS, Outcome, PostProcessor, PostSettings, settings_with

AB = ("a", "b")
A = [1.0, 0.0]
B = [0.0, 1.0]


def proc(labels=AB, **kw) -> PostProcessor:
    kw.setdefault("min_hold_s", 0.0)
    return PostProcessor(labels, PostSettings(**kw))


# -- settings ---------------------------------------------------------------------------------------


def test_default_settings_are_the_documented_ones() -> None:
    s = PostSettings()
    assert (s.threshold, s.unknown_label, s.method, s.window, s.n, s.m, s.min_hold_s) == (0.6, "unknown", "moving_average", 3, 3, 3, 1.0)
    assert METHODS == ("none", "moving_average", "n_of_m")
    assert PostProcessor(AB).settings == s


@pytest.mark.parametrize(
    "kw",
    [
        dict(threshold=0.0), dict(threshold=1.0), dict(window=1), dict(n=1, m=1), dict(n=2, m=2),
        dict(min_hold_s=0.0), dict(method="none"), dict(method="n_of_m"),
    ],
)
def test_settings_accept_their_boundaries(kw) -> None:
    PostSettings(**kw)


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(method="median"), r"^smoothing method 'median' is unknown; use one of none, moving_average, n_of_m$"),
        (dict(threshold=-0.01), r"^threshold -0.01 must be between 0 and 1$"),
        (dict(threshold=1.01), r"^threshold 1.01 must be between 0 and 1$"),
        (dict(window=0), r"^smoothing needs window >= 1 and 1 <= n <= m \(got window=0, n=3, m=3\)$"),
        (dict(n=0), r"window=3, n=0, m=3"),
        (dict(m=0, n=0), r"n=0, m=0"),
        (dict(n=4, m=3), r"n=4, m=3"),
        (dict(min_hold_s=-0.5), r"^min_hold_s cannot be negative$"),
    ],
)
def test_settings_refuse_out_of_range_values(kw, message) -> None:
    with pytest.raises(ValueError, match=message):
        PostSettings(**kw)


def test_settings_from_pipeline_config_converts_types() -> None:
    cfg = SimpleNamespace(
        threshold="0.7", unknown_label=5, min_hold_s="2",
        smoothing=SimpleNamespace(method="n_of_m", window="4", n="2", m="5"),
    )
    s = PostSettings.from_pipeline(cfg)
    assert s == PostSettings(threshold=0.7, unknown_label="5", method="n_of_m", window=4, n=2, m=5, min_hold_s=2.0)
    assert isinstance(s.window, int) and isinstance(s.n, int) and isinstance(s.m, int)
    assert isinstance(s.threshold, float) and isinstance(s.min_hold_s, float) and isinstance(s.unknown_label, str)


def test_settings_from_pipeline_config_without_unknown_label_uses_unknown() -> None:
    cfg = SimpleNamespace(threshold=0.5, min_hold_s=0, smoothing=SimpleNamespace(method="none", window=1, n=1, m=1))
    assert PostSettings.from_pipeline(cfg).unknown_label == "unknown"


def test_settings_with_replaces_only_the_named_fields() -> None:
    s = PostSettings(threshold=0.5, window=5)
    t = settings_with(s, threshold=0.9)
    assert t == PostSettings(threshold=0.9, window=5) and s.threshold == 0.5


# -- threshold --------------------------------------------------------------------------------------


def test_a_score_exactly_at_the_threshold_is_confident() -> None:
    # planted bug: `>=` became `>` -> the reading exactly at the threshold was 'unknown'
    out = proc(method="none", threshold=0.75).update([0.75, 0.25], ts=0.0)
    assert out.label == "a" and out.confidence == 0.75


def test_a_score_just_below_the_threshold_is_unknown_with_the_best_score_as_confidence() -> None:
    out = proc(method="none", threshold=0.75, unknown_label="nothing").update([0.5, 0.25], ts=0.0)
    assert out.label == "nothing"
    assert out.confidence == 0.5  # how close the model came
    assert out.raw_label == "a"


def test_threshold_zero_accepts_everything_and_one_only_certainty() -> None:
    assert proc(method="none", threshold=0.0).update([0.0, 0.0], 0).label == "a"
    assert proc(method="none", threshold=1.0).update([0.5, 0.5], 0).label == "unknown"
    assert proc(method="none", threshold=1.0).update([0.0, 1.0], 0).label == "b"


def test_the_smoothed_score_is_compared_with_the_threshold() -> None:
    p = proc(method="moving_average", window=2, threshold=0.75)
    assert p.update(A, 0).label == "a"  # mean [1, 0]
    out = p.update([0.5, 0.5], 1)  # mean [0.75, 0.25]: at the threshold
    assert out.label == "a" and out.scores == {"a": 0.75, "b": 0.25}
    out = p.update([0.5, 0.5], 2)  # mean [0.5, 0.5]: below -> unknown
    assert out.label == "unknown" and out.confidence == 0.5


# -- moving average ---------------------------------------------------------------------------------


def test_moving_average_forgets_readings_older_than_the_window() -> None:
    # planted bug: unbounded window -> default smoothing remembers everything
    p = proc(threshold=0.0)  # default: moving_average, window 3
    for t in range(3):
        p.update(A, t)
    out = p.update(B, 3)  # window holds A, A, B
    assert out.scores == pytest.approx({"a": 2 / 3, "b": 1 / 3})
    out = p.update(B, 4)  # A, B, B
    assert out.scores == pytest.approx({"a": 1 / 3, "b": 2 / 3})
    assert out.label == "b" and out.confidence == pytest.approx(2 / 3)
    out = p.update(B, 5)  # B, B, B: the three A readings are gone (unbounded: 0.5)
    assert out.scores == {"a": 0.0, "b": 1.0}


def test_moving_average_window_one_is_the_reading_itself() -> None:
    p = proc(window=1, threshold=0.5)
    p.update(A, 0)
    assert p.update([0.25, 0.75], 1).scores == {"a": 0.25, "b": 0.75}


def test_moving_average_of_a_short_history_averages_what_there_is() -> None:
    p = proc(window=4, threshold=0.0)
    assert p.update(A, 0).scores == {"a": 1.0, "b": 0.0}
    assert p.update(B, 1).scores == {"a": 0.5, "b": 0.5}
    assert p.update(B, 2).scores == pytest.approx({"a": 1 / 3, "b": 2 / 3})


def test_method_none_does_not_smooth() -> None:
    p = proc(method="none", threshold=0.0)
    p.update(A, 0)
    out = p.update(B, 1)
    assert out.scores == {"a": 0.0, "b": 1.0} and out.label == "b"


# -- n of m -----------------------------------------------------------------------------------------


def test_n_of_m_needs_n_agreeing_votes_among_the_last_m() -> None:
    p = proc(method="n_of_m", n=2, m=3, threshold=0.5)
    out = p.update(A, 0)  # votes [a]: 1 < 2 -> no candidate; the first reading decides 'unknown'
    assert out.label == "unknown" and out.changed
    out = p.update(B, 1)  # votes [a, b]: no label has 2
    assert out.label == "unknown" and not out.changed
    out = p.update(B, 2)  # votes [a, b, b]: b has 2
    assert out.label == "b" and out.changed
    out = p.update(A, 3)  # votes [b, b, a]
    assert out.label == "b" and not out.changed
    out = p.update(A, 4)  # votes [b, a, a]: a has 2
    assert out.label == "a" and out.changed


def test_n_of_m_keeps_the_reading_scores_and_the_first_reading_without_majority_is_unknown() -> None:
    p = proc(method="n_of_m", n=2, m=2, threshold=0.5, unknown_label="?")
    out = p.update([0.75, 0.25], 0)  # 1 vote of 2 needed: no candidate, first decision -> unknown label
    assert out.label == "?" and out.changed
    assert out.scores == {"a": 0.75, "b": 0.25} and out.confidence == 0.75
    out = p.update([0.75, 0.25], 1)
    assert out.label == "a" and out.confidence == 0.75


def test_n_of_m_forgets_votes_older_than_m() -> None:
    p = proc(method="n_of_m", n=2, m=2, threshold=0.5)
    p.update(A, 0)
    p.update(A, 1)  # a decided
    p.update(B, 2)  # votes [a, b]
    out = p.update(B, 3)  # votes [b, b]; with an unbounded deque: [a, a, b, b] -> most common a
    assert out.label == "b"


def test_n_of_m_a_reading_below_the_threshold_votes_unknown() -> None:
    p = proc(method="n_of_m", n=2, m=3, threshold=0.75)
    p.update(A, 0)
    assert p.update(A, 1).label == "a"  # votes [a, a]
    assert p.update([0.5, 0.5], 2).label == "a"  # votes [a, a, unknown]
    out = p.update([0.5, 0.5], 3)  # votes [a, unknown, unknown]
    assert out.label == "unknown" and out.changed and out.confidence == 0.5


# -- hold time --------------------------------------------------------------------------------------


def test_hold_keeps_a_decision_for_min_hold_s_and_switches_exactly_at_it() -> None:
    p = proc(method="none", threshold=0.5, min_hold_s=1.0)
    out = p.update(A, 10.0)
    assert out.label == "a" and out.changed and p.since == 10.0
    out = p.update(B, 10.5)  # held
    assert out.label == "a" and not out.changed
    assert out.confidence == 0.0  # the decided label's score in this reading
    assert out.raw_label == "b"
    out = p.update(B, 11.0)  # exactly min_hold_s later: switches
    assert out.label == "b" and out.changed and p.since == 11.0
    out = p.update(A, 11.999)
    assert out.label == "b" and not out.changed


def test_hold_time_counts_from_the_last_change_not_the_last_reading() -> None:
    p = proc(method="none", threshold=0.5, min_hold_s=1.0)
    p.update(A, 0.0)
    p.update(A, 0.9)  # same label: `since` stays 0.0
    assert p.since == 0.0
    assert p.update(B, 1.0).label == "b"


def test_the_same_label_again_is_not_a_change() -> None:
    p = proc(method="none", threshold=0.5)
    assert p.update(A, 0).changed
    out = p.update(A, 5)
    assert not out.changed and out.label == "a" and p.since == 0


def test_unknown_is_a_label_that_also_takes_over() -> None:
    p = proc(method="none", threshold=0.75)
    p.update(A, 0)
    out = p.update([0.5, 0.5], 1)
    assert out.label == "unknown" and out.changed


# -- the reading --------------------------------------------------------------------------------------


def test_outcome_fields_and_scores_as_floats() -> None:
    p = proc(("x", "y", "z"), method="none", threshold=0.5)
    out = p.update(np.array([[0.25], [0.5], [0.25]], np.float64), 3.0)  # any shape, flattened
    assert isinstance(out, Outcome)
    assert out == Outcome(label="y", confidence=0.5, scores={"x": 0.25, "y": 0.5, "z": 0.25}, raw_label="y", changed=True)
    assert all(type(v) is float for v in out.scores.values()) and type(out.confidence) is float


@pytest.mark.parametrize("probs", [[1.0], [0.2, 0.3, 0.5]])
def test_wrong_number_of_scores_is_refused(probs) -> None:
    with pytest.raises(ValueError, match=rf"^got {len(probs)} scores for 2 labels$"):
        proc().update(probs, 0)


def test_raw_label_is_the_top_of_the_unsmoothed_reading() -> None:
    p = proc(window=3, threshold=0.0)
    p.update(A, 0)
    p.update(A, 1)
    out = p.update(B, 2)  # smoothed: a; this reading alone: b
    assert out.label == "a" and out.raw_label == "b"


# -- reconfigure ------------------------------------------------------------------------------------


def test_reconfigure_restarts_the_history_and_keeps_the_decision() -> None:
    p = proc(window=3, threshold=0.0, min_hold_s=0.0)
    p.update(A, 0)
    p.update(A, 1)
    p.reconfigure(PostSettings(window=2, threshold=0.0, min_hold_s=0.0))
    assert p.current == "a" and p.settings.window == 2
    out = p.update(B, 2)  # history restarted: mean of [B] only
    assert out.scores == {"a": 0.0, "b": 1.0} and out.label == "b" and out.changed
    p.update(B, 3)
    out = p.update(A, 4)  # window 2: [B, A]
    assert out.scores == {"a": 0.5, "b": 0.5}


def test_reconfigure_bounds_the_new_vote_history_by_the_new_m() -> None:
    p = proc(method="n_of_m", n=1, m=1, threshold=0.5)
    p.reconfigure(PostSettings(method="n_of_m", n=2, m=2, threshold=0.5, min_hold_s=0.0))
    p.update(A, 0)
    p.update(A, 1)
    p.update(B, 2)
    assert p.update(B, 3).label == "b"  # votes [b, b] (unbounded: [a, a, b, b] -> a)


def test_reconfigure_with_new_labels() -> None:
    p = proc(method="none", threshold=0.5)
    p.update(A, 0)
    p.reconfigure(PostSettings(method="none", threshold=0.5, min_hold_s=0.0), labels=["cat", "dog", "owl"])
    assert p.labels == ("cat", "dog", "owl")
    out = p.update([0.0, 0.0, 1.0], 1)
    assert out.label == "owl" and out.scores == {"cat": 0.0, "dog": 0.0, "owl": 1.0}
    p.reconfigure(PostSettings(method="none", threshold=0.5, min_hold_s=0.0))
    assert p.labels == ("cat", "dog", "owl")  # no labels given: kept


def test_a_new_processor_has_decided_nothing() -> None:
    p = PostProcessor(AB)
    assert p.current is None and p.since == 0.0 and p.labels == AB


def test_scores_are_taken_as_float32_and_unchanged_decisions_are_false_not_none() -> None:
    p = proc(method="none", threshold=0.5)
    out = p.update([0.6, 0.4], 0)
    assert out.confidence == float(np.float32(0.6)) != 0.6  # what the model's float32 output holds
    assert out.scores["b"] == float(np.float32(0.4))
    assert p.update([0.6, 0.4], 1).changed is False
