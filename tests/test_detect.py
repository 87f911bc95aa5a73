"""Duplicate and scene-cut detection on synthetic score sequences, and the frame difference itself."""

from __future__ import annotations

from collections.abc import Sequence


import numpy as np
import pytest

from retime.defaults import DEFAULTS
from retime.detect import (
    GRAM_REACH,
    HISTOGRAM_LEVELS,
    DetectionSettings,
    NeighbourGram,
    analysis_block,
    block_average,
    colour_change,
    colour_histogram,
    detect,
    difference_scores,
    frame_difference,
    local_motion,
    previous_frame_vectors,
    run_positions,
)
from retime.errors import UsageError

# --- frame_difference -----------------------------------------------------------------------------------------


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def test_frame_difference_is_the_mean_absolute_grey_level_difference():
    a = np.array([[0, 10], [200, 255]], dtype=np.uint8)
    b = np.array([[5, 0], [255, 250]], dtype=np.uint8)
    assert frame_difference(a, b) == pytest.approx((5 + 10 + 55 + 5) / 4)
    assert frame_difference(b, a) == frame_difference(a, b)
    assert frame_difference(a, a) == 0.0


def test_frame_difference_does_not_wrap_around_in_uint8():
    a = np.zeros((4, 4), dtype=np.uint8)
    b = np.full((4, 4), 255, dtype=np.uint8)
    assert frame_difference(a, b) == 255.0


def test_frame_difference_matches_a_float_reference_on_rgb():
    a, b = textured(36, 64, 1).reshape(36, 64, 1).repeat(3, axis=2), textured(36, 64, 2)[..., None].repeat(3, 2)
    a[..., 1] //= 2
    expected = np.abs(a.astype(np.float64) - b.astype(np.float64)).mean()
    assert frame_difference(a, b) == pytest.approx(expected)


def test_frame_difference_is_resolution_independent():
    # the same picture and the same change at two resolutions give the same score (DESIGN.md A: T scales with
    # the pixel count; retime divides by it instead)
    a, b = textured(45, 80, 3), textured(45, 80, 4)
    big_a, big_b = np.kron(a, np.ones((4, 4), dtype=np.uint8)), np.kron(b, np.ones((4, 4), dtype=np.uint8))
    assert big_a.shape == (180, 320)
    assert frame_difference(big_a, big_b) == pytest.approx(frame_difference(a, b))


def test_frame_difference_names_both_shapes_when_they_differ():
    with pytest.raises(ValueError, match=r"\(720, 1280\) vs \(720, 1279\)"):
        frame_difference(np.zeros((720, 1280), np.uint8), np.zeros((720, 1279), np.uint8))


@pytest.mark.parametrize("a, b, message", [
    (np.zeros((4, 4), np.float32), np.zeros((4, 4), np.float32), "uint8"),
    (np.zeros((0, 4), np.uint8), np.zeros((0, 4), np.uint8), "non-empty"),
    (np.zeros(16, np.uint8), np.zeros(16, np.uint8), r"\(H, W\)"),
])
def test_frame_difference_rejects_what_it_cannot_measure(a, b, message):
    with pytest.raises(ValueError, match=message):
        frame_difference(a, b)


def test_difference_scores_gives_n_minus_one_scores():
    frames = [textured(8, 8, i) for i in range(5)]
    frames[3] = frames[2].copy()
    scores = difference_scores(frames)
    assert len(scores) == 4
    assert scores[2] == 0.0 and min(scores[:2] + scores[3:]) > 50


# --- synthetic score sequences --------------------------------------------------------------------------------


def motion(n_scores: int, level: float = 3.0, jitter: float = 0.25, seed: int = 0) -> np.ndarray:
    """Scores of moving content: about `level` grey levels per frame, +-`jitter` relative."""
    rng = np.random.default_rng(seed)
    return level * (1 + jitter * (rng.random(n_scores) * 2 - 1))


def drop(scores: np.ndarray, first: int, k: int = 1, level: float = 0.15) -> np.ndarray:
    """Replace frames first..first+k-1 with copies of frame first-1, as a recorder does: the copies score about
    `level` (coding noise) and the next real frame has moved for k + 1 frame intervals."""
    s = scores.copy()
    s[first - 1:first - 1 + k] = level
    if first - 1 + k < s.size:
        s[first - 1 + k] = scores[first - 1:first + k].sum()
    return s


def test_moving_content_without_dips_has_no_duplicates():
    d = detect(motion(99))
    assert d.duplicates == [] and d.runs == [] and d.cuts == []
    assert d.n_frames == 100


def test_isolated_compressed_duplicates_are_found_exactly():
    s = drop(drop(drop(motion(199), 20), 77), 150)
    d = detect(s)
    assert d.duplicates == [20, 77, 150]
    assert d.cuts == []  # the jump after a drop (2x the motion) is not a cut
    run = d.runs[1]
    assert (run.start, run.length, run.left, run.right, run.freeze) == (77, 1, 76, 78, False)
    assert run.scores == pytest.approx((0.15,))
    assert "dip_ratio" in run.reasons[0]


def test_runs_of_two_and_three():
    s = drop(drop(motion(149), 30, k=2), 90, k=3)
    d = detect(s)
    assert [(r.start, r.length) for r in d.runs] == [(30, 2), (90, 3)]
    assert d.duplicates == [30, 31, 90, 91, 92]
    assert d.freezes == []


def test_lossless_duplicates_are_certain_even_in_slow_content():
    s = motion(99, level=0.3)
    s[40] = 0.0
    d = detect(s)
    assert d.duplicates == [41]
    assert "floor" in d.runs[0].reasons[0]


def test_freeze_of_ten_is_one_run_and_kept():
    s = motion(149)
    rng = np.random.default_rng(5)
    s[59:69] = rng.uniform(0.02, 0.2, 10)  # frames 60..69 repeat frame 59, with coding noise
    s[69] = 11 * 3.0
    d = detect(s)
    assert [(r.start, r.length, r.freeze) for r in d.runs] == [(60, 10, True)]
    assert [r.start for r in d.freezes] == [60]
    assert d.cuts == []


def test_long_compressed_freeze_is_not_broken_into_short_runs():
    s = motion(199)
    rng = np.random.default_rng(6)
    s[49:89] = rng.uniform(0.02, 0.25, 40)  # 40 frozen frames
    d = detect(s)
    assert [(r.start, r.length) for r in d.runs] == [(50, 40)]
    assert d.runs[0].freeze


def test_compressed_freeze_at_the_end_after_slow_motion_is_kept():
    # like bigbuckbunny.mp4 frames 119-128 at CRF 30: slow motion before, the clip ends three frames after the
    # freeze. The motion level is the larger of the two sides: pooled, the slow side and the frozen frames would
    # outvote the three moving scores at the end and the freeze would go unnoticed (its start slips through).
    s = np.concatenate([motion(40, level=0.8, seed=9),
                        np.random.default_rng(10).uniform(0.03, 0.1, 10),
                        [4.3, 1.7, 1.9]])
    d = detect(s)
    assert [(r.start, r.length, r.freeze) for r in d.runs] == [(41, 10, True)]


def test_static_slow_shot_without_a_dip_has_no_duplicates():
    # EVAL.md: a nearly static shot (true motion under 0.5 grey levels per frame) must not be "repaired"
    rng = np.random.default_rng(7)
    d = detect(rng.uniform(0.2, 0.4, 120))
    assert d.duplicates == []


def test_encoder_skip_in_a_slow_shot_is_not_a_duplicate():
    # a slow pan where the encoder skipped an update: a dip, but the picture barely moves (min_motion)
    s = np.random.default_rng(8).uniform(0.25, 0.4, 80)
    s[[1, 30, 61]] = 0.06
    assert detect(s).duplicates == []


def test_slow_down_of_real_motion_is_not_a_duplicate():
    # motion that slows for two frames (like bigbuckbunny.mp4 frames 117-118) is no sharp dip
    s = np.array([2.0, 1.8, 1.5, 0.8, 0.7, 0.76, 0.31, 0.33, 1.03, 0.81, 0.79, 0.57, 0.67, 0.56, 0.7, 0.63])
    assert detect(s).duplicates == []


def test_scene_cut_by_absolute_threshold_and_duplicate_right_after_it():
    s = motion(99)
    s[49] = 70.0  # cut between frames 49 and 50
    s[50] = 0.12  # frame 51 repeats frame 50, the first frame of the new shot
    s[51] = 6.0
    d = detect(s)
    assert d.cuts == [50]
    assert d.duplicates == [51]
    assert d.runs[0].left == 50 and d.runs[0].right == 52
    assert "scene_cut" in d.cut_details[0].reason


def test_duplicate_right_before_a_cut():
    s = motion(99)
    s[48] = 0.1  # frame 49 repeats frame 48
    s[49] = 70.0  # then the cut
    d = detect(s)
    assert d.duplicates == [49] and d.cuts == [50]


def test_relative_scene_cut_needs_a_spike_not_just_a_jump_after_a_run():
    s = motion(119, level=2.0)
    s[30] = 25.0  # a spike of 12x the motion, under the absolute scene_cut: a cut between similar shots
    s = drop(s, 80, k=3)  # the real frame after a run of 3 differs by ~4x the motion: not a cut
    d = detect(s)
    assert d.cuts == [31]
    assert "cut_ratio" in d.cut_details[0].reason
    assert d.duplicates == [80, 81, 82]


# --- scene cuts confirmed by colour ---------------------------------------------------------------------------


def smooth_colours(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth random RGB picture (coarse noise, 8-pixel cells, blocky upsampling): what a scene looks like."""
    coarse = np.random.default_rng(seed).integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    return np.kron(coarse, np.ones((8, 8, 1), dtype=np.uint8))[:h, :w]


def test_colour_histogram_counts_each_colour_once_and_sums_to_one():
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[1, 2] = (255, 255, 255)
    h = colour_histogram(rgb)
    assert h.shape == (HISTOGRAM_LEVELS ** 3,) and h.sum() == pytest.approx(1.0)
    assert h[0] == pytest.approx(4 / 6)  # black
    assert h[(HISTOGRAM_LEVELS - 1) * HISTOGRAM_LEVELS ** 2] == pytest.approx(1 / 6)  # red
    assert h[-1] == pytest.approx(1 / 6)  # white
    with pytest.raises(ValueError, match="uint8"):
        colour_histogram(np.zeros((4, 4), np.uint8))


def test_colour_change_ignores_where_the_colours_are():
    big = smooth_colours(64, 160, seed=1)
    a, b = big[:, :96], big[:, 10:106]  # a fast pan (10 % of the width): every pixel changed, few colours did
    assert frame_difference(a, b) > 40
    moved = colour_change(colour_histogram(a), colour_histogram(b))
    other_shot = colour_change(colour_histogram(a), colour_histogram(255 - a))
    assert colour_change(colour_histogram(a), colour_histogram(np.roll(a, 17, axis=1))) == 0.0
    assert moved < DEFAULTS.cut_colour < other_shot
    assert colour_change(colour_histogram(np.zeros_like(a)), colour_histogram(np.full_like(a, 255))) == 1.0


def test_fast_motion_with_unchanged_colours_is_not_a_cut():
    s = motion(59, level=50.0, jitter=0.1)  # a fast pan: every score above scene_cut
    s[20] = 50.0
    colours = np.full(59, 0.1)
    d = detect(s, colours=colours)
    assert d.cuts == [] and len(d.fast_motion) == 59
    assert "fast motion" in d.fast_motion[0].reason and d.fast_motion[0].colour == pytest.approx(0.1)
    assert detect(s).cuts == list(range(1, 60))  # without colours every candidate is a cut (the old rule)


def test_a_spike_at_the_first_frame_with_the_same_colours_is_interpolated_not_copied():
    # a jolt in the first pair of a clip (motion known from one side only) looked like a cut: frame 1 was copied
    s = motion(40, level=2.0)
    s[0] = 20.0
    assert detect(s).cuts == [1]
    colours = np.full(40, 0.03)
    colours[0] = 0.08
    d = detect(s, colours=colours)
    assert d.cuts == [] and [c.index for c in d.fast_motion] == [1]


def test_a_cut_needs_the_colours_to_change_too():
    s = motion(99)
    s[30] = 70.0  # a new shot
    s[60] = 25.0  # a spike (cut_ratio) in another shot change
    colours = np.full(99, 0.05)
    colours[30], colours[60] = 0.6, 0.3
    d = detect(s, colours=colours)
    assert d.cuts == [31, 61] and d.fast_motion == []
    assert "colour change 0.600 >= cut_colour" in d.cut_details[0].reason


def test_a_cut_between_shots_of_the_same_brightness_is_found_by_its_colours():
    # the grey levels barely jump (18 against motion of 8: no spike), but every colour changed
    s = motion(59, level=8.0)
    s[30] = 18.0
    colours = np.full(59, 0.02)
    colours[30] = 1.0
    assert detect(s).cuts == []
    d = detect(s, colours=colours)
    assert d.cuts == [31] and "colour_cut" in d.cut_details[0].reason
    colours[30] = DEFAULTS.colour_cut - 0.01
    assert detect(s, colours=colours).cuts == []
    s[30] = DEFAULTS.cut_min - 1  # too small a change in the pixels, whatever the colours
    colours[30] = 1.0
    assert detect(s, colours=colours).cuts == []


def test_a_fast_shot_after_a_cut_keeps_its_duplicates():
    # fast motion above scene_cut is motion, not a cut: it sets the motion level a duplicate dips from
    s = motion(59, level=50.0, jitter=0.1)
    s = drop(s, 30)
    d = detect(s, colours=np.full(59, 0.1))
    assert d.duplicates == [30] and d.cuts == []
    assert detect(s).duplicates == []  # every score a cut: no motion left to dip from


def test_colours_must_match_the_scores():
    with pytest.raises(ValueError, match="2 colour changes for 3 scores"):
        detect([1.0, 2.0, 3.0], colours=[0.1, 0.2])
    with pytest.raises(ValueError, match=r"colours\[1\]"):
        detect([1.0, 2.0], colours=[0.1, 1.5])
    # not measured (NaN) is fine where no rule reads the colours, a score under cut_min, and nowhere else
    assert detect([1.0, 50.0, 1.0], colours=[np.nan, 0.9, np.nan]).cuts == [2]
    with pytest.raises(ValueError, match=r"NaN only where the score is under cut_min 12\); colours\[1\]"):
        detect([1.0, 50.0, 1.0], colours=[np.nan, np.nan, np.nan])
    with pytest.raises(UsageError, match="colour_cut"):
        DetectionSettings(cut_colour=0.5, colour_cut=0.4)


def test_duplicates_at_frame_one_and_at_the_last_frame():
    s = drop(motion(59), 1)
    s[-1] = 0.1
    d = detect(s)
    assert d.duplicates == [1, 59]
    assert d.runs[-1].right == d.n_frames  # no frame after the last run


def test_single_frame_and_two_identical_frames():
    assert detect([]).duplicates == []
    assert detect([]).n_frames == 1
    assert detect([0.0]).duplicates == [1]


def test_scores_must_be_finite_and_non_negative():
    with pytest.raises(ValueError, match=r"scores\[2\]"):
        detect([1.0, 2.0, -0.5])
    with pytest.raises(ValueError, match="finite"):
        detect([1.0, float("nan")])


def test_settings_default_to_the_shared_defaults_and_are_checked():
    settings = DetectionSettings()
    assert (settings.threshold, settings.max_run, settings.scene_cut) == (
        DEFAULTS.threshold, DEFAULTS.max_run, DEFAULTS.scene_cut)
    with pytest.raises(UsageError, match="dip_ratio=1.5"):
        DetectionSettings(dip_ratio=1.5)
    with pytest.raises(UsageError, match="floor"):
        DetectionSettings(threshold=0.5, floor=0.6)
    with pytest.raises(UsageError, match="max_run"):
        DetectionSettings(max_run=0)


def test_threshold_is_a_ceiling_for_shallow_dips():
    s = drop(motion(99, level=20.0), 50, level=5.0)  # 0.25 x the motion: a dip, not a deep one, 5 grey levels
    assert detect(s).duplicates == []
    assert detect(s, DetectionSettings(threshold=6.0)).duplicates == [50]


def test_deep_dip_in_fast_motion_counts_above_the_threshold():
    # x264 ultrafast leaves duplicates of fast motion a grey level or two apart
    s = drop(motion(99, level=20.0), 50, level=1.5)  # 0.075 x the motion
    assert detect(s).duplicates == [50]
    assert "deep dip" in detect(s).runs[0].reasons[0]
    assert detect(s, DetectionSettings(deep_ratio=0.0)).duplicates == []


def test_local_motion_skips_excluded_scores():
    s = np.array([4.0, 4.0, 4.0, 0.1, 0.1, 0.1, 0.1, 4.0, 4.0, 4.0])
    excluded = s < 1
    m = local_motion(s, excluded, window=3)
    assert m[5] == pytest.approx(4.0)  # sees past the low scores to the motion on both sides


def test_a_jump_across_a_timestamp_gap_is_expected_motion_not_a_cut():
    """Across a gap of k missing frames the picture moved for k + 1 intervals: 4x the local motion there is no
    spike, and its colour change (a fast fade) does not make it a new shot. The same jump without the gap is a cut."""
    scores = [3.0] * 30
    scores[14] = 13.0  # ~4.3x the motion, over cut_min
    colours = [0.05] * 30
    colours[14] = 0.6  # over colour_cut
    spans = [1] * 30
    spans[14] = 4
    assert 15 not in detect(scores, colours=colours, spans=spans).cuts
    assert 15 in detect(scores, colours=colours).cuts
    with_spike = list(scores)
    with_spike[14] = 45.0  # over scene_cut (40), with other colours: a cut whatever the gap
    assert 15 in detect(with_spike, colours=colours, spans=spans).cuts


# --- block_average, analysis_block ------------------------------------------------------------------------------


@pytest.mark.parametrize("block", [2, 3, 4, 16, 17])  # 17: the sums no longer fit uint16
def test_block_average_is_the_rounded_mean_of_each_block(block):
    a = textured(3 * block - 1, 3 * block + 1, 5)  # rows and columns past the last whole block are left out
    got = block_average(a, block)
    assert got.shape == (2, 3) and got.dtype == np.uint8
    blocks = a[:2 * block, :3 * block].reshape(2, block, 3, block).astype(np.float64)
    assert np.array_equal(got, np.floor(blocks.mean(axis=(1, 3)) + 0.5))
    assert block_average(np.full((block, block), 255, np.uint8), block)[0, 0] == 255  # no overflow in the sums


def test_block_average_of_one_is_the_frame():
    a = textured(10, 13, 5)
    assert block_average(a, 1) is a


def test_block_average_removes_zero_mean_noise_and_keeps_a_shift():
    # a repeat re-coded with fresh noise against a real one-pixel shift: averaging shrinks the first far more
    rng = np.random.default_rng(0)
    picture = np.kron(textured(30, 40, 6), np.ones((8, 8), np.uint8)).astype(np.int16)
    noisy = np.clip(picture + rng.integers(-3, 4, picture.shape), 0, 255).astype(np.uint8)
    shifted = np.roll(picture, 1, axis=1).astype(np.uint8)
    base = picture.astype(np.uint8)
    full = frame_difference(base, noisy) / frame_difference(base, shifted)
    averaged = (frame_difference(block_average(base, 4), block_average(noisy, 4))
                / frame_difference(block_average(base, 4), block_average(shifted, 4)))
    assert averaged < full / 3


def test_block_average_rejects_what_it_cannot_average():
    with pytest.raises(ValueError, match="uint8"):
        block_average(np.zeros((8, 8), np.float32), 2)
    with pytest.raises(ValueError, match="does not fit"):
        block_average(np.zeros((3, 8), np.uint8), 4)


def test_analysis_block_is_one_size_for_every_frame_but_the_tiny():
    assert analysis_block(1280, 720) == analysis_block(176, 144) == analysis_block(3840, 2160) == DEFAULTS.score_block
    assert analysis_block(96, 64) == 1  # under MIN_SCORED_SIDE rows once averaged: scored as it is


# --- the decoder's motion vectors (streams without B-frames) --------------------------------------------------


def moved_areas(n_scores: int, level: float = 0.1, seed: int = 1) -> np.ndarray:
    """Moved share of each frame's area in slow real motion: about `level`, +-30 %."""
    return level * (1 + 0.3 * (np.random.default_rng(seed).random(n_scores) * 2 - 1))


def test_vectors_find_a_recoded_repeat_that_does_not_dip_in_score():
    s = motion(99, level=0.6, jitter=0.1)
    s[40] = 0.3  # half the motion: coding noise, not a sharp dip (dip_ratio 0.4)
    v = moved_areas(99)
    v[40] = 0.01
    assert detect(s).duplicates == []
    d = detect(s, vectors=v)
    assert d.duplicates == [41]
    assert "motion vectors moved 0.010 of its inter-coded area" in d.runs[0].reasons[0]


def test_vectors_never_take_back_what_the_scores_find():
    s = drop(drop(motion(99, level=2.0), 20), 60, k=2)
    v = moved_areas(99)  # a repeat coded with vectors: several references, or a search that chased the noise
    assert detect(s, vectors=v).duplicates == detect(s).duplicates == [20, 60, 61]


def test_moved_area_like_the_neighbours_is_motion_not_a_repeat():
    s = motion(99, level=0.6, jitter=0.1)
    s[40] = 0.3  # no score dip ...
    v = moved_areas(99, level=0.05)
    v[40] = 0.04  # ... and it moved like the frames around it: one small thing moving on a still background
    assert detect(s, vectors=v).duplicates == []


def test_no_moved_area_around_a_frame_says_nothing():
    """A fade or a lighting change is coded with zero vectors everywhere: no frame may be taken for a repeat on
    their word, only on the scores'."""
    s = motion(99, level=0.6, jitter=0.3)
    v = np.zeros(99)
    assert detect(s).duplicates == detect(s, vectors=v).duplicates == []
    s2 = drop(motion(99, level=2.0), 50)
    assert detect(s2, vectors=v).duplicates == [50]


def test_vectors_take_the_quieter_side_where_the_motion_changes_pace():
    s = motion(99, level=0.6, jitter=0.1)
    s[40] = 0.45
    v = np.concatenate([moved_areas(41, level=0.08), moved_areas(58, level=0.6, seed=2)])
    v[40] = 0.09  # as much as the slow frames before it moved: not a repeat of the fast ones after
    assert detect(s, vectors=v).duplicates == []


def test_unknown_vectors_leave_the_scores_to_decide_and_the_floor_always_holds():
    s = drop(drop(motion(99), 20), 60)
    v = np.full(99, np.nan)
    assert detect(s, vectors=v).duplicates == detect(s).duplicates == [20, 60]
    s1 = motion(99, level=0.6, jitter=0.1)
    s1[40] = s1[70] = 0.3  # two repeats without a score dip; frame 71's vectors are unknown (an I-frame)
    v1 = moved_areas(99)
    v1[::12] = np.nan  # an I-frame every 12 frames
    v1[40], v1[70] = 0.01, np.nan
    assert detect(s1, vectors=v1).duplicates == [41]
    assert detect(s1, DetectionSettings(vector_dip=0), vectors=v1).duplicates == []  # 0 turns the rule off
    s2 = motion(99, level=0.6, jitter=0.1)
    s2[30] = 0.0  # identical pictures, whatever the vectors say
    assert detect(s2, vectors=moved_areas(99)).duplicates == [31]


def test_vectors_must_match_the_scores():
    with pytest.raises(ValueError, match="3 motion-vector shares for 4 scores"):
        detect([1.0] * 4, vectors=[0.1] * 3)
    with pytest.raises(ValueError, match=r"vectors\[1\]"):
        detect([1.0] * 3, vectors=[0.1, 1.5, np.nan])


def test_previous_frame_vectors_only_for_streams_without_b_frames():
    assert previous_frame_vectors(["I", "P", "P"], [None, 0.2, 0.0]) == pytest.approx([0.2, 0.0])
    assert np.isnan(previous_frame_vectors(["I", "P", "I"], [None, 0.2, None])[1])
    assert previous_frame_vectors(["I", "B", "P"], [None, 0.2, 0.1]) is None
    assert previous_frame_vectors(["I", "I"], [None, None]) is None
    with pytest.raises(ValueError, match="2 picture types for 1 shares"):
        previous_frame_vectors(["I", "P"], [None])


# --- the position test: NeighbourGram, run_positions and the rule ----------------------------------------------


def gram_of(frames: list[np.ndarray]) -> np.ndarray:
    g = NeighbourGram()
    for f in frames:
        g.add(f)
    return g.array()


def test_neighbour_gram_is_the_exact_integer_inner_products():
    frames = [textured(18, 32, seed) for seed in range(GRAM_REACH + 5)]
    a = gram_of(frames)
    assert a.shape == (len(frames), GRAM_REACH + 1) and a.dtype == np.int64
    for t in range(len(frames)):
        for k in range(GRAM_REACH + 1):
            want = int((frames[t].astype(np.int64) * frames[t + k].astype(np.int64)).sum()) if t + k < len(frames) else 0
            assert a[t, k] == want, (t, k)
    g = NeighbourGram()
    g.add(frames[0])
    with pytest.raises(ValueError, match=r"frame 1 is \(32, 18\), the first was \(18, 32\)"):
        g.add(frames[1].T.copy())  # as many samples, another picture
    with pytest.raises(ValueError, match="frame 1 is float64, not uint8"):
        g.add(frames[1].astype(np.float64))


def test_run_positions_of_even_motion_a_repeat_and_no_motion():
    rng = np.random.default_rng(3)
    start, step = rng.integers(0, 100, (8, 8)), rng.integers(0, 30, (8, 8))
    line = [(start + t * step).astype(np.uint8) for t in range(5)]  # frames 0..4 on a straight line, evenly spaced
    assert run_positions(gram_of(line), 1, 3) == pytest.approx([0.25, 0.5, 0.75], abs=1e-12)
    repeat = [line[0], line[0], line[2]]
    assert run_positions(gram_of(repeat), 1, 1) == pytest.approx([0.0], abs=1e-12)
    still = [line[0], line[1], line[0]]  # the frames before and after are one picture: no direction
    assert np.isnan(run_positions(gram_of(still), 1, 1)).all()
    with pytest.raises(ValueError, match="outside a gram"):
        run_positions(gram_of(line), 0, 1)
    with pytest.raises(ValueError, match="outside a gram"):
        run_positions(gram_of(line), 2, 4)
    with pytest.raises(ValueError, match="an empty run"):
        run_positions(gram_of(line), 3, 2)
    long_line = [(start + t * step // 4).astype(np.uint8) for t in range(GRAM_REACH + 2)]
    assert run_positions(gram_of(long_line), 1, GRAM_REACH - 1).size == GRAM_REACH - 1  # P and S 8 apart: reached
    with pytest.raises(ValueError, match=f"reaching {GRAM_REACH}"):
        run_positions(gram_of(long_line), 1, GRAM_REACH)  # 9 apart: beyond the products kept


def pan(positions: list[float], repeats: Sequence[int] = (), h: int = 48, w: int = 96) -> list[np.ndarray]:
    """A horizontal pan over a smooth texture, frame t at sub-pixel offset ``positions[t]`` (pixels); each frame in
    ``repeats`` is the frame before it with +-1 grey level of coding noise on about a third of its pixels."""
    rng = np.random.default_rng(0)
    x, phase = np.arange(w)[None, :], rng.random(h)[:, None] * 2 * np.pi
    frames = [np.clip(np.rint(128 + 60 * np.sin(2 * np.pi * (x - p) / 64 + phase)
                              + 30 * np.sin(2 * np.pi * (x - p) / 23 + 2 * phase)), 0, 255).astype(np.uint8)
              for p in positions]
    for i in repeats:
        noise = rng.integers(-1, 2, (h, w)) * (rng.random((h, w)) < 0.3)
        frames[i] = np.clip(frames[i - 1].astype(int) + noise, 0, 255).astype(np.uint8)
    return frames


def scores_and_gram(frames: list[np.ndarray]) -> tuple[list[float], np.ndarray]:
    return difference_scores(frames), gram_of(frames)


def test_a_real_frame_that_barely_moves_is_not_a_repeat_but_a_recoded_repeat_is():
    positions = [2.0 * t for t in range(100)]
    positions[71] = positions[70] + 0.3  # the camera stalls for a frame: a sharp dip in score, but it moved
    s, g = scores_and_gram(pan(positions, repeats=[41]))
    assert detect(s).duplicates == [41, 71]  # the dip tests alone take both
    d = detect(s, gram=g)
    assert d.duplicates == [41]
    assert "its position steps 0.000 along the motion <= position_cut 0.045" in d.runs[0].reasons[0]
    assert detect(s, DetectionSettings(position_cut=0), gram=g).duplicates == [41, 71]  # 0 turns it off


def test_the_first_frame_is_judged_too_and_each_reason_gives_the_step_it_was_judged_by():
    positions = [2.0 * t for t in range(100)]
    positions[1] = positions[0] + 0.3
    s, g = scores_and_gram(pan(positions))
    assert detect(s).duplicates == [1] and detect(s, gram=g).duplicates == []
    # a camera creeping for two frames: each steps less than the cut, so both stay taken (a limit of the test)
    positions = [2.0 * t for t in range(100)]
    positions[61], positions[62] = positions[60] + 0.25, positions[60] + 0.5
    s, g = scores_and_gram(pan(positions))
    d = detect(s, gram=g)
    assert d.duplicates == [61, 62]
    for reason in d.runs[0].reasons:
        step = float(reason.split("its position steps ")[1].split()[0])
        assert 0 < step <= DEFAULTS.position_cut


def test_in_a_run_of_a_barely_moving_frame_and_its_repeat_the_repeat_stays():
    positions = [2.0 * t for t in range(100)]
    positions[61] = positions[62] = positions[60] + 0.36  # the stall is 3 intervals long from 60 to 63
    s, g = scores_and_gram(pan(positions, repeats=[62]))
    assert detect(s).duplicates == [61, 62]
    assert detect(s, gram=g).duplicates == [62]


def test_certain_repeats_are_exempt_from_the_position_test_and_vector_taken_ones_get_the_wider_cut():
    positions = [2.0 * t for t in range(100)]
    positions[71] = positions[70] + 0.3  # 0.3 of the 4 pixels to frame 72: over position_cut, under the wider
    s, g = scores_and_gram(pan(positions))
    certain = list(s)
    certain[70] = DEFAULTS.duplicate_floor  # at the floor: a repeat whatever else is measured
    assert detect(certain, gram=g).duplicates == [71]
    # slow motion with a repeat the decoder's vectors find (no dip in score), on the gram of the stall above
    slow = motion(99, level=0.6, jitter=0.1)
    slow[70] = 0.3
    v = moved_areas(99)
    v[70] = 0.01
    d = detect(slow, vectors=v, gram=g)
    assert d.duplicates == [71]
    reason = d.runs[0].reasons[0]
    assert "decoded motion vectors moved 0.010" in reason and "along the motion <= vector_position_cut 0.2" in reason
    assert DEFAULTS.position_cut < float(reason.split("its position steps ")[1].split()[0]) <= 0.2
    slow[70] = 0.1  # a dip in score: now the scores take it, and the position test judges it
    assert detect(slow, gram=g).duplicates == []
    positions[71] = positions[70] + 1.2  # 0.3 of the way: real motion, whatever the vectors say
    _, g = scores_and_gram(pan(positions))
    assert detect(slow, vectors=v, gram=g).duplicates == []


def test_vectors_judge_again_at_the_fixed_point_a_repeat_taken_beside_a_freeze():
    """A fast encoder's repeat right after a freeze: the dip takes it in the first round, when the frozen frames
    beside it are not yet duplicates and their zero vectors drag its neighbours' moved level to nothing, so the
    vectors cannot vouch for it then; against the final levels they do, and it gets the vectors' position cut."""
    positions = [2.0 * t for t in range(100)]
    for t in range(61, 71):
        positions[t] = positions[60]  # a freeze: frames 61-70 hold frame 60's picture
    positions[72] = positions[71] + 0.4  # the repeat after it steps 0.1 of the way to frame 73
    _, g = scores_and_gram(pan(positions))
    s = motion(99, level=1.1, jitter=0.1)
    s[60:70] = np.linspace(0.1, 0.4, 10)  # the frozen frames, re-coded: above the floor
    s[70] = 2.5  # the motion resumes
    s[71] = 0.35  # the repeat: a dip
    v = moved_areas(99, level=0.3)
    v[60:70] = 0.0
    v[71] = 0.01
    d = detect(s, vectors=v, gram=g)
    assert d.duplicates == list(range(61, 71)) + [72]
    assert d.runs[0].freeze and "vector_position_cut" in d.runs[1].reasons[0]
    assert detect(s, gram=g).duplicates == list(range(61, 71))  # by the scores alone: the position test drops 72


def test_the_gram_must_match_the_scores():
    s, g = scores_and_gram(pan([2.0 * t for t in range(10)]))
    with pytest.raises(ValueError, match=r"the gram must be \(10, R \+ 1\) int64"):
        detect(s, gram=g[:-1])
    with pytest.raises(ValueError, match="float64"):
        detect(s, gram=g.astype(np.float64))
    with pytest.raises(UsageError, match="position_cut"):
        DetectionSettings(position_cut=1.0)
    with pytest.raises(UsageError, match="position_cut"):
        DetectionSettings(position_cut=-0.1)
    with pytest.raises(UsageError, match=r"vector_position_cut=1.5 .*\[0, 1\)"):
        DetectionSettings(vector_position_cut=1.5)
    DetectionSettings(position_cut=0.3)  # above vector_position_cut: the vectors' repeats are judged at 0.3 too
