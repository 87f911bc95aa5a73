"""retime.timing on synthetic PTS lists and repeat positions: nominal rate, gaps, cadences."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from retime.errors import UsageError
from retime.timing import TimingSettings, analyse_timing, find_cadence, nominal_rate

MS = Fraction(1, 1000)


def grid(rate: Fraction, n: int, time_base: Fraction) -> list[int]:
    """PTS of n CFR frames at ``rate``, rounded to the nearest tick of ``time_base`` (what a muxer stores)."""
    return [round(Fraction(i) / rate / time_base) for i in range(n)]


def delete(pts: list[int], positions) -> list[int]:
    drop = set(positions)
    return [p for i, p in enumerate(pts) if i not in drop]


# --- nominal rate ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate, time_base", [
    (Fraction(24000, 1001), MS),  # 41 and 42 ms alternate
    (Fraction(30000, 1001), MS),
    (Fraction(60000, 1001), MS),
    (Fraction(30000, 1001), Fraction(1, 30000)),
    (Fraction(25), Fraction(1, 25)),
    (Fraction(24), Fraction(1, 12288)),
    (Fraction(50), Fraction(1, 90000)),
    (Fraction(15), MS),
])
def test_nominal_rate_survives_time_base_rounding(rate, time_base):
    pts = grid(rate, 120, time_base)
    assert nominal_rate(pts, time_base) == rate
    timing = analyse_timing(pts, time_base)
    assert timing.kind == "cfr" and timing.gaps == () and timing.on_grid == 1.0
    assert timing.interval == 1 / rate


def test_24_and_23976_are_told_apart_in_a_millisecond_time_base():
    assert nominal_rate(grid(Fraction(24), 200, MS), MS) == 24
    assert nominal_rate(grid(Fraction(24000, 1001), 200, MS), MS) == Fraction(24000, 1001)


def test_nominal_rate_with_many_gaps_is_the_frame_interval_not_the_average():
    pts = delete(grid(Fraction(30), 300, MS), range(5, 300, 4))  # a quarter of the frames missing
    assert nominal_rate(pts, MS) == 30
    average = (len(pts) - 1) / ((pts[-1] - pts[0]) * MS)
    assert average < 24


def test_jittery_capture_clock_gives_the_standard_rate():
    rng = np.random.default_rng(1)
    tb = Fraction(1, 90000)
    pts = [round(i * 3000 + rng.normal(0, 150)) for i in range(300)]  # 30 fps, 1.7 ms of jitter
    timing = analyse_timing(pts, tb)
    assert timing.rate == 30 and timing.regular and timing.gaps == ()


def test_declared_rate_is_taken_when_it_fits_and_ignored_when_it_does_not():
    pts = grid(Fraction(25), 50, MS)
    assert nominal_rate(pts, MS, declared=[Fraction(25)]) == 25
    # an MP4's average rate of a clip with gaps is not its frame interval
    assert nominal_rate(delete(pts, [10, 20, 30]), MS, declared=[Fraction(47, 2)]) == 25


def test_an_odd_rate_is_measured_exactly_enough():
    rate = Fraction(50, 3)  # 16.67 fps
    assert nominal_rate(grid(rate, 100, Fraction(1, 90000)), Fraction(1, 90000)) == rate


@pytest.mark.parametrize("pts, words", [([0], "at least 2"), ([0, 10, 10], "increase"), ([0, 20, 10], "increase")])
def test_nominal_rate_rejects_bad_timestamps(pts, words):
    with pytest.raises(ValueError, match=words):
        analyse_timing(pts, MS)


# --- gaps -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate, time_base", [(Fraction(25), Fraction(1, 25)), (Fraction(24000, 1001), MS),
                                             (Fraction(30000, 1001), Fraction(1, 90000))])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gaps_at_seeded_positions_are_found_exactly(rate, time_base, seed):
    rng = np.random.default_rng(seed)
    n = 150
    removed: list[int] = []
    for start in sorted(rng.choice(np.arange(2, n - 5, 6), 8, replace=False)):
        removed += list(range(start, start + int(rng.integers(1, 4))))  # runs of 1-3 frames
    kept = [i for i in range(n) if i not in set(removed)]
    timing = analyse_timing(delete(grid(rate, n, time_base), removed), time_base)
    assert timing.kind == "cfr-with-gaps" and timing.rate == rate
    truth = {}
    for i in removed:
        after = next(j for j in kept if j > i)
        truth[kept.index(after)] = truth.get(kept.index(after), 0) + 1
    assert {g.index: g.missing for g in timing.gaps} == truth
    assert timing.missing == len(removed)
    pts = delete(grid(rate, n, time_base), removed)
    for gap in timing.gaps:
        assert (gap.start, gap.end) == (pts[gap.index - 1] * time_base, pts[gap.index] * time_base)
        assert f"{gap.missing} frame(s) missing" in gap.reason


def test_gap_threshold_is_in_intervals():
    pts = [0, 40, 80, 140, 180, 220, 300] + [300 + 40 * i for i in range(1, 20)]  # 1.5 intervals at 3, 2 at 6
    assert [(g.index, g.missing) for g in analyse_timing(pts, MS).gaps] == [(3, 1), (6, 1)]
    strict = analyse_timing(pts, MS, TimingSettings(gap_threshold=1.75))
    assert [(g.index, g.missing) for g in strict.gaps] == [(6, 1)]
    assert 2 in strict.off_grid  # the 1.5-interval step: off the grid, not a gap
    assert "off the grid" in analyse_timing(pts, MS).gaps[0].reason


def test_mixed_rates_are_irregular_and_report_no_gaps():
    # 30 fps, then 20 fps: half the intervals are 1.5 of the other rate's
    pts = grid(Fraction(30), 40, MS)
    pts += [pts[-1] + 50 * (i + 1) for i in range(40)]
    timing = analyse_timing(pts, MS)
    assert timing.kind == "vfr" and not timing.regular and timing.gaps == ()
    assert timing.on_grid < 0.9


def test_timing_to_dict():
    timing = analyse_timing(delete(grid(Fraction(25), 20, MS), [7, 8]), MS)
    data = timing.to_dict()
    assert data["kind"] == "cfr-with-gaps" and data["rate"] == "25" and data["missing"] == 2
    assert data["gaps"][0]["frame"] == 7 and data["gaps"][0]["start"] == 0.24 and data["gaps"][0]["end"] == 0.36


def test_timing_settings_are_checked():
    with pytest.raises(UsageError, match="gap_threshold"):
        TimingSettings(gap_threshold=1)
    with pytest.raises(UsageError, match="regularity"):
        TimingSettings(cadence_min_regularity=0)


# --- cadences -------------------------------------------------------------------------------------------------


def converted(src_rate: Fraction, out_rate: Fraction, n: int) -> list[int]:
    """Repeat positions of a nearest-frame conversion (FFmpeg's fps filter): output j shows source round(j * r)."""
    r = src_rate / out_rate
    shown = [math.floor(j * r + Fraction(1, 2)) for j in range(n)]
    return [j for j in range(1, n) if shown[j] == shown[j - 1]]


@pytest.mark.parametrize("src, out, period", [
    (Fraction(24), Fraction(25), Fraction(25)),
    (Fraction(24000, 1001), Fraction(30000, 1001), Fraction(5)),
    (Fraction(50, 3), Fraction(25), Fraction(3)),
    (Fraction(18), Fraction(25), Fraction(25, 7)),
    (Fraction(25, 2), Fraction(25), Fraction(2)),  # animation on twos
])
def test_conversion_cadences_are_found_with_period_and_phase(src, out, period):
    n = 300
    repeats = converted(src, out, n)
    cadence = find_cadence(repeats, n)
    assert cadence is not None
    assert cadence.period == period and cadence.source_rate(out) == src
    assert cadence.regularity == 1.0 and set(cadence.slots) == set(repeats)


def test_bigbuckbunny_pattern():
    cadence = find_cadence([7, 32, 57, 82, 107], 132)
    assert (cadence.period, cadence.phase, cadence.slots, cadence.regularity) == (25, 7, (7, 32, 57, 82, 107), 1.0)
    assert cadence.to_dict(Fraction(25))["source_rate"] == "24"


def test_a_hidden_repeat_and_a_real_drop_lower_the_regularity_but_keep_the_cadence():
    repeats = [j for j in range(4, 250, 5) if j != 104] + [52]  # one slot missed (a still shot), one real drop
    cadence = find_cadence(repeats, 250)
    assert cadence.period == 5 and cadence.phase == 4 and 104 in cadence.slots
    assert cadence.hits == 49 and cadence.repeats == 50 and len(cadence.slots) == 50
    assert cadence.regularity == pytest.approx(49 / 51)


@pytest.mark.parametrize("repeats, n", [
    ([], 100),
    ([10, 35], 100),  # two repeats are not a pattern
    ([5, 17, 31, 60, 61, 90], 120),  # scattered drops
    ([7, 32, 57, 82], 400),  # a pattern in the first fifth only
])
def test_no_cadence(repeats, n):
    assert find_cadence(repeats, n) is None


def test_random_drops_are_not_a_cadence():
    rng = np.random.default_rng(3)
    for _ in range(20):
        repeats = sorted(rng.choice(np.arange(1, 500), 12, replace=False))
        assert find_cadence(repeats, 500) is None
