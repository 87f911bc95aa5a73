"""The flow-scale search: which candidate wins, ties, and which source frames it may rebuild."""

from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest

from retime.detect import Detection, detect
from retime.interpolate.autotune import TIE_DB, Candidate, choose
from retime.pipeline import Analysis, ModelSettings
from retime.pipeline._model import tuning_positions, tuning_samples
from retime.plan import plan_fix_drops
from retime.timing import analyse_timing
from tests.conftest import moving_frames


class NoisyEngine:
    """Returns the true middle frame plus noise whose level depends on (model, scale, ensemble): a stand-in whose
    best setting is known. Counts its calls per model."""

    def __init__(self, name: str, noise: dict[tuple[float, bool], float], truth: dict[int, np.ndarray]):
        self.model_name, self.noise, self.truth, self.calls = name, noise, truth, 0

    def interpolate(self, a, b, ts, *, scale, ensemble, flips=0):
        self.calls += 1
        key = next(k for k, v in self.truth.items() if np.array_equal(v[0], a))
        middle = self.truth[key][1].astype(float)
        rng = np.random.default_rng(int(scale * 8) + 2 * ensemble)
        return [np.clip(middle + rng.normal(0, self.noise[(scale, ensemble)], middle.shape), 0, 255)
                .round().astype(np.uint8)]


def samples_and_truth(n: int = 3):
    frames = moving_frames(2 * n + 2)
    samples = [(2 * k + 1, frames[2 * k], frames[2 * k + 1], frames[2 * k + 2]) for k in range(n)]
    return samples, {i: (a, t) for i, a, t, _ in samples}


def test_the_setting_that_rebuilds_best_wins_across_models():
    samples, truth = samples_and_truth()
    e46 = NoisyEngine("rife-4.6", {(1.0, True): 3.0, (0.5, True): 6.0}, truth)
    e42 = NoisyEngine("rife-4.2x", {(1.0, True): 1.0, (0.5, True): 8.0}, truth)
    engines = {"rife-4.6": e46, "rife-4.2x": e42}
    candidates = [Candidate(m, s, True) for m in engines for s in (1.0, 0.5)]
    choice = choose(engines.__getitem__, samples, candidates)
    assert choice.candidate == Candidate("rife-4.2x", 1.0, True)
    assert [t.candidate for t in choice.trials] == candidates
    assert choice.frames == (1, 3, 5)
    assert e46.calls == e42.calls == 2 * len(samples)
    by = {t.candidate: t.psnr for t in choice.trials}
    assert by[Candidate("rife-4.2x", 1.0, True)] > by[Candidate("rife-4.6", 1.0, True)] + 3  # 1 vs 3 grey levels
    assert all(len(t.per_sample) == 3 for t in choice.trials)


def test_prefer_finer_breaks_ties_towards_the_finer_scale_only():
    samples, truth = samples_and_truth()
    tie = NoisyEngine("rife-4.6", {(2.0, False): 2.01, (1.0, False): 2.0, (0.5, False): 9.0}, truth)
    candidates = [Candidate("rife-4.6", s, False) for s in (0.5, 1.0, 2.0)]
    plain = choose(lambda name: tie, samples, candidates)
    finer = choose(lambda name: tie, samples, candidates, prefer_finer=True)
    scores = {t.candidate.scale: t.psnr for t in plain.trials}
    assert abs(scores[1.0] - scores[2.0]) <= TIE_DB < scores[1.0] - scores[0.5]
    assert finer.candidate.scale == 2.0
    assert plain.candidate.scale == max(scores, key=scores.get)


class PerSampleEngine:
    """Returns the true middle frame plus noise of a level set per (scale, sample): the same noise pattern for
    every scale, so that the per-sample PSNR gap between two scales is about 20 log10 of their levels' ratio."""

    model_name = "rife-4.6"

    def __init__(self, levels: dict[float, list[float]], truth: dict[int, np.ndarray]):
        self.levels, self.truth = levels, truth

    def interpolate(self, a, b, ts, *, scale, ensemble, flips=0):
        k = next(j for j, (key, v) in enumerate(self.truth.items()) if np.array_equal(v[0], a))
        middle = list(self.truth.values())[k][1].astype(float)
        noise = np.random.default_rng(k).normal(0, 1, middle.shape)
        return [np.clip(middle + self.levels[scale][k] * noise, 0, 255).round().astype(np.uint8)]


def test_another_setting_replaces_the_first_only_when_it_wins_on_the_frames_consistently():
    samples, truth = samples_and_truth()
    for middle in truth.values():  # room for the noise on both sides of every value
        np.clip(middle[1], 40, 215, out=middle[1])
    candidates = [Candidate("rife-4.6", 1.0, True), Candidate("rife-4.6", 0.5, True)]

    def chosen(levels, n=3):
        choice = choose(lambda name: PerSampleEngine(levels, truth), samples[:n], candidates)
        return choice.candidate.scale, choice.kept_default

    # scale 0.5 better on one frame by far and worse on the other two: a higher mean, but no consistent gain
    assert chosen({1.0: [2.0, 2.0, 2.0], 0.5: [0.5, 2.4, 2.4]}) == (1.0, True)
    # better on every frame by about the same: it replaces the default
    assert chosen({1.0: [2.0, 2.0, 2.0], 0.5: [1.5, 1.6, 1.4]}) == (0.5, False)
    # one frame cannot tell a consistent gain from luck
    assert chosen({1.0: [2.0], 0.5: [0.5]}, n=1) == (1.0, True)
    # the default best on its own: nothing to keep it against
    assert chosen({1.0: [1.0, 1.0, 1.0], 0.5: [2.0, 2.0, 2.0]}) == (1.0, False)
    # better on every frame, by amounts that vary: a gain of about 2 standard errors is enough at PAIRED_SE = 1
    gains = 20 * np.log10(2.0 / np.array([1.2, 1.9, 1.8]))
    assert 1.5 < gains.mean() / (gains.std(ddof=1) / np.sqrt(3)) < 2.5
    assert chosen({1.0: [2.0, 2.0, 2.0], 0.5: [1.2, 1.9, 1.8]}) == (0.5, False)


def test_one_candidate_or_no_samples_runs_nothing():
    samples, truth = samples_and_truth()
    engine = NoisyEngine("rife-4.6", {(1.0, False): 1.0}, truth)
    only = choose(lambda name: engine, samples, [Candidate("rife-4.6", 1.0, False)])
    none = choose(lambda name: engine, [], [Candidate("rife-4.6", 1.0, False), Candidate("rife-4.6", 0.5, False)])
    assert engine.calls == 0 and only.trials == () and none.trials == ()
    with pytest.raises(ValueError):
        choose(lambda name: engine, samples, [])


def test_too_few_frames_to_rebuild_means_no_search():
    """With fewer usable triplets than MIN_SAMPLES (a short clip, repeats and cuts around the kept positions),
    the preset's default renders, even where the job's size would pay for more."""
    from retime.interpolate.autotune import MIN_SAMPLES
    from retime.pipeline._model import _tune

    pics = {i: np.full((8, 8, 3), 10 * i, np.uint8) for i in range(4)}  # two triplets only: centres 1 and 2
    analysis = _analysis(4, [], None, pics)
    assert 0 < len(tuning_samples(analysis)) < MIN_SAMPLES
    engine = SettableEngine("rife-4.6", scale=None)
    _, report = _tune(engine, analysis, ModelSettings(model="rife-4.6"), "cpu", prefer_finer=False, budget=100_000)
    assert engine.calls == 0 and report["searched"] is False and "to rebuild" in report["not_searched"]


def test_presets_and_fixed_options_give_the_candidates():
    balanced = ModelSettings().candidates(720, 1280)
    assert {(c.model, c.scale, c.ensemble) for c in balanced} == {
        (m, s, True) for m in ("rife-4.6", "rife-4.2x") for s in (1.0, 0.5)}
    assert {c.scale for c in ModelSettings().candidates(2160, 3840)} == {0.5, 0.25}  # above 1440p: halved
    assert ModelSettings(quality="fast").candidates(720, 1280) == [Candidate("rife-4.6", 1.0, False)]
    fixed = ModelSettings(quality="best", model="rife-4.6", scale=2.0, ensemble=False).candidates(720, 1280)
    assert fixed == [Candidate("rife-4.6", 2.0, False, 2)]  # best averages both mirrors (docs/quality.md)
    assert {c.flips for c in ModelSettings(quality="best").candidates(720, 1280)} == {2}
    assert {c.flips for c in balanced} == {0}
    assert {c.model for c in ModelSettings(refine=True).candidates(720, 1280)} == {"rife-4.2x"}


def _analysis(n: int, duplicates: list[int], cut: int | None, pictures: dict) -> Analysis:
    scores = [4.0] * (n - 1)
    for d in duplicates:
        scores[d - 1] = 0.0
    if cut is not None:
        scores[cut - 1] = 80.0
    detection: Detection = detect(scores)
    info = SimpleNamespace(width=8, height=8)  # what the search reads of the input's facts
    return Analysis(info=info, pts=tuple(range(n)), durations=(1,) * n, scores=tuple(scores),
                    detection=detection, plan=plan_fix_drops(n, detection),
                    timing=analyse_timing(list(range(n)), Fraction(1, 25)), pictures=pictures)


def test_samples_skip_duplicates_and_scene_cuts():
    """A triplet whose middle or right frame repeats the one before, or starts a new shot, is never rebuilt."""
    n = 40
    pics = {i: np.full((4, 4, 3), i, np.uint8) for i in range(n)}
    analysis = _analysis(n, duplicates=[11], cut=21, pictures=pics)
    assert 11 in analysis.detection.duplicates and 21 in analysis.detection.cuts
    centres = [s[0] for s in tuning_samples(analysis)]
    assert 10 not in centres and 11 not in centres  # frame 11 repeats frame 10
    assert 20 not in centres and 21 not in centres  # frame 21 starts a new shot
    assert 5 in centres and 30 in centres
    for i, previous, frame, following in tuning_samples(analysis):
        assert previous[0, 0, 0] == i - 1 and frame[0, 0, 0] == i and following[0, 0, 0] == i + 1


def test_sample_positions_are_spread_and_bounded_in_memory():
    class Info:
        def __init__(self, w, h, frames):
            self.width, self.height, self.frame_count = w, h, frames
            self.duration, self.frame_rate = None, Fraction(25)

    small = tuning_positions(Info(1280, 720, 1000), ModelSettings())
    assert len(small) == 12 and min(small) >= 0 and max(small) <= 999  # 4 triplets
    assert max(small) - min(small) > 600  # spread over the clip
    huge = tuning_positions(Info(7680, 4320, 1000), ModelSettings())
    assert len(huge) == 3  # one triplet, the least there is: 3 RGB frames of 8K are over the 96 MB budget
    assert tuning_positions(Info(1280, 720, 1000), ModelSettings(quality="fast")) == []


class SettableEngine:
    """A blending stand-in with the real engine's settings: ``model_name``, ``scale``, ``ensemble``, ``flips``."""

    def __init__(self, name: str = "rife-4.2x", scale: float | None = 0.5) -> None:
        self.model_name, self.scale, self.ensemble, self.flips, self.calls = name, scale, False, 0, 0

    def scale_for(self, height, width, scale=None):
        return scale or self.scale or 1.0  # the size rule at these sizes: 1

    def interpolate(self, a, b, ts, *, scale=None, ensemble=None, flips=None):
        self.calls += 1
        return [((a.astype(np.uint16) + b) // 2).astype(np.uint8) for _ in ts]


def test_tune_keeps_a_users_checkpoint_as_the_one_network(tmp_path):
    """With --weights the file is the only network, whatever the preset names: no crash when it is 4.2x and the
    preset's first model is 4.6, and the report names what was loaded."""
    from retime.pipeline._model import _tune

    analysis = _analysis(40, duplicates=[], cut=None, pictures={})  # no samples: the size rule
    engine = SettableEngine("rife-4.2x", scale=None)
    chosen, report = _tune(engine, analysis, ModelSettings(weights=tmp_path / "mine.pkl"), "cpu",
                           prefer_finer=False)
    assert chosen is engine and report["name"] == "rife-4.2x" and report["model"] == "rife-4.2x"
    assert report["searched"] is False and engine.scale == 1.0 and engine.ensemble is True

    pics = {i: np.full((8, 8, 3), 10 * (i % 20), np.uint8) for i in range(40)}
    searched = _analysis(40, duplicates=[], cut=None, pictures=pics)
    chosen, report = _tune(engine, searched, ModelSettings(weights=tmp_path / "mine.pkl"), "cpu",
                           prefer_finer=False)
    assert chosen is engine and {t["model"] for t in report["trials"]} == {"rife-4.2x"}
    assert len(report["trials"]) == 2 and searched.pictures == {}  # scales 1 and 0.5; the samples are freed


def test_an_injected_engine_is_used_as_it_is(clips, tmp_path):
    """fix-drops and upsample do not search or change the settings of an interpolator they are given."""
    from retime.media.encode import EncodeSettings
    from retime.pipeline import fix_drops, upsample

    engine = SettableEngine()
    result = fix_drops(clips["lossless"].path, tmp_path / "f.mkv", encode=EncodeSettings(codec="ffv1"),
                       interpolator=engine)
    assert result.synthesized > 0 and result.model is None
    result = upsample(clips["lossless"].path, tmp_path / "u.mkv", encode=EncodeSettings(codec="ffv1"),
                      interpolator=engine)
    assert result.model is None and (engine.scale, engine.ensemble) == (0.5, False)
    assert engine.calls == result.synthesized + 3  # fix-drops' repairs: one call per run (of 1, 2 and 3)


def test_the_search_costs_at_most_a_share_of_the_frames_the_job_synthesizes():
    from retime.interpolate.autotune import MIN_SAMPLES
    from retime.pipeline._model import SEARCH_SHARE, _tune

    pics = {i: np.full((8, 8, 3), 10 * (i % 20), np.uint8) for i in range(40)}
    engine = SettableEngine("rife-4.6", scale=None)
    settings = ModelSettings(model="rife-4.6")  # scales 1 and 0.5 with ensembling: 2 candidates
    available = len(tuning_samples(_analysis(40, [], None, dict(pics))))
    assert available >= MIN_SAMPLES
    enough = int(np.ceil(2 * MIN_SAMPLES / SEARCH_SHARE))  # the smallest job that affords MIN_SAMPLES samples
    for budget, calls in ((1, 0), (enough - 1, 0), (enough, 2 * MIN_SAMPLES), (100_000, 2 * available)):
        engine.calls = 0
        _, report = _tune(engine, _analysis(40, [], None, dict(pics)), settings, "cpu", prefer_finer=False,
                          budget=budget)
        assert engine.calls == calls <= SEARCH_SHARE * budget and report["searched"] is (calls > 0)
        if calls == 2 * MIN_SAMPLES:  # fewer samples than pass 1 kept: still spread over the clip, ends included
            centres = [i for i, *_ in tuning_samples(_analysis(40, [], None, dict(pics)))]
            assert report["rebuilt_frames"][0] == centres[0] and report["rebuilt_frames"][-1] == centres[-1]
        elif calls == 0:
            assert "to synthesize" in report["not_searched"]
