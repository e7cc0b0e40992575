"""PostProcessor (edge/pipelines/postprocess.py): every answer below is worked out by hand from the
module's documented order of operations (smoothing -> threshold -> hold). Scores are chosen to be exact
in float32 (0.25, 0.5, 0.75 ...) so a boundary is really a boundary."""

from __future__ import annotations

from types import SimpleNamespace

import annotated_types
import numpy as np
import pytest
from pydantic import BaseModel, Field

from edge.config.pipelines import PipelineConfigBase, SmoothingSettings
from edge.pipelines import postprocess
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


def _field_bounds(model, name):
    """The field's ge/le and min_length, read straight from the pydantic metadata (independent of the module)."""
    meta = model.model_fields[name].metadata
    ge = [c.ge for c in meta if isinstance(c, annotated_types.Ge)]
    le = [c.le for c in meta if isinstance(c, annotated_types.Le)]
    min_len = [c.min_length for c in meta if isinstance(c, annotated_types.MinLen)]
    return ge, le, min_len


def test_bounds_are_the_config_models() -> None:
    # edge/config/pipelines.py: window, n, m are Field(ge=1, le=1000); min_hold_s Field(ge=0, le=3600);
    # threshold Field(ge=0, le=1); unknown_label Field(min_length=1)
    for name in ("window", "n", "m"):
        assert _field_bounds(SmoothingSettings, name)[:2] == ([1], [1000])
        assert postprocess._bounds(SmoothingSettings, name) == (1.0, 1000.0)
        assert postprocess.COUNT_BOUNDS[name] == (1.0, 1000.0)
    assert set(postprocess.COUNT_BOUNDS) == {"window", "n", "m"}
    assert _field_bounds(PipelineConfigBase, "min_hold_s")[:2] == ([0], [3600])
    assert postprocess._bounds(PipelineConfigBase, "min_hold_s") == (0.0, 3600.0) == postprocess.MIN_HOLD_BOUNDS
    assert _field_bounds(PipelineConfigBase, "threshold")[:2] == ([0], [1])
    assert postprocess._bounds(PipelineConfigBase, "threshold") == (0.0, 1.0) == postprocess.THRESHOLD_BOUNDS
    assert _field_bounds(PipelineConfigBase, "unknown_label")[2] == [1]
    assert postprocess._min_length(PipelineConfigBase, "unknown_label") == 1 == postprocess.UNKNOWN_LABEL_MIN_LENGTH
    assert all(isinstance(v, float) for v in postprocess._bounds(SmoothingSettings, "window"))


class _Fake(BaseModel):
    both: int = Field(5, ge=2, le=7)
    only_ge: int = Field(5, ge=2)
    only_le: int = Field(5, le=7)
    neither: int = 5
    name: str = Field("abc", min_length=3)
    free: str = "x"


def test_bounds_reads_ge_as_low_and_le_as_high() -> None:
    lo, hi = postprocess._bounds(_Fake, "both")
    assert (lo, hi) == (2.0, 7.0) and type(lo) is float and type(hi) is float


@pytest.mark.parametrize("name", ["only_ge", "only_le", "neither"])
def test_bounds_insists_on_both_ge_and_le(name) -> None:
    with pytest.raises(AssertionError, match=rf"^_Fake\.{name} needs ge and le$"):
        postprocess._bounds(_Fake, name)


def test_min_length_reads_min_length_and_needs_one() -> None:
    assert postprocess._min_length(_Fake, "name") == 3
    with pytest.raises(StopIteration):
        postprocess._min_length(_Fake, "free")


@pytest.mark.parametrize(
    "kw",
    [
        dict(window=1000), dict(n=1000, m=1000), dict(m=1000), dict(n=1, m=1000), dict(window=1000, n=1000, m=1000),
        dict(min_hold_s=3600.0), dict(min_hold_s=0.0), dict(unknown_label="x"),
    ],
)
def test_settings_accept_values_exactly_at_the_config_bounds(kw) -> None:
    s = PostSettings(**kw)
    for k, v in kw.items():
        assert getattr(s, k) == v


@pytest.mark.parametrize(
    "kw, got",
    [
        (dict(window=1001), "window=1001, n=3, m=3"),
        (dict(m=1001), "window=3, n=3, m=1001"),
        (dict(n=1001, m=1001), "window=3, n=1001, m=1001"),
        (dict(window=1001, n=1001, m=1001), "window=1001, n=1001, m=1001"),
    ],
)
def test_settings_refuse_counts_one_above_the_config_bound(kw, got) -> None:
    with pytest.raises(ValueError) as e:
        PostSettings(**kw)
    assert str(e.value) == f"smoothing allows window, n and m up to 1000 (got {got})"


def test_settings_refuse_n_above_m_before_the_upper_bound() -> None:
    with pytest.raises(ValueError) as e:
        PostSettings(n=1001, m=1000)
    assert str(e.value) == "smoothing needs window >= 1 and 1 <= n <= m (got window=3, n=1001, m=1000)"


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(min_hold_s=3600.5), "min_hold_s 3600.5 must be at most 3600"),
        (dict(min_hold_s=-0.5), "min_hold_s cannot be negative"),
        (dict(min_hold_s=-1e-9), "min_hold_s cannot be negative"),
        (dict(unknown_label=""), "unknown_label cannot be empty"),
    ],
)
def test_settings_refuse_one_step_past_the_other_bounds(kw, message) -> None:
    with pytest.raises(ValueError) as e:
        PostSettings(**kw)
    assert str(e.value) == message


def test_a_positive_min_hold_lower_bound_is_named_in_the_message(monkeypatch) -> None:
    # the "cannot be negative" wording is only right when the config's lower bound is 0
    monkeypatch.setattr(postprocess, "MIN_HOLD_BOUNDS", (0.5, 10.0))
    PostSettings(min_hold_s=0.5)
    PostSettings(min_hold_s=10.0)
    with pytest.raises(ValueError) as e:
        PostSettings(min_hold_s=0.25)
    assert str(e.value) == "min_hold_s must be at least 0.5"
    with pytest.raises(ValueError) as e:
        PostSettings(min_hold_s=10.5)
    assert str(e.value) == "min_hold_s 10.5 must be at most 10"


def test_a_longer_minimum_label_length_is_enforced(monkeypatch) -> None:
    monkeypatch.setattr(postprocess, "UNKNOWN_LABEL_MIN_LENGTH", 3)
    PostSettings(unknown_label="abc")
    with pytest.raises(ValueError, match="^unknown_label cannot be empty$"):
        PostSettings(unknown_label="ab")


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
