"""Plans: fix-drops from detections, upsampling from source times; counts, t values, cuts, streaming windows, JSON."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from retime.detect import DetectionSettings, detect
from retime.plan import (
    INTERPOLATE,
    KEEP_CUT,
    KEEP_EDGE,
    KEEP_FREEZE,
    KEEP_HOLD,
    Copy,
    FixDropsPlan,
    Synth,
    UpsamplePlan,
    plan_fix_drops,
    plan_upsample,
)

MOTION = 3.0  # grey levels: steady motion between distinct frames
CUT = 80.0  # grey levels: a scene cut


def scores_with(n_frames: int, duplicates=(), cuts=()) -> list[float]:
    """Scores for n_frames frames in steady motion; frame d in duplicates repeats frame d - 1; frame c in cuts
    starts a new shot."""
    s = [MOTION] * (n_frames - 1)
    for d in duplicates:
        s[d - 1] = 0.0
    for c in cuts:
        s[c - 1] = CUT
    return s


def fix_drops(n_frames: int, duplicates=(), cuts=()) -> FixDropsPlan:
    detection = detect(scores_with(n_frames, duplicates, cuts))
    assert detection.duplicates == sorted(duplicates)
    return plan_fix_drops(n_frames, detection)


# --- fix-drops ------------------------------------------------------------------------------------------------


def test_no_duplicates_copies_every_frame():
    plan = fix_drops(20)
    assert plan.frames == tuple(Copy(i) for i in range(20))
    assert plan.synthesized == 0
    assert plan.runs == ()
    assert plan.max_lookahead == 1


def test_single_duplicate_is_synthesized_halfway_between_its_neighbours():
    # DESIGN.md A: a, b, c, d with b repeating a -> a, x, c, d with x between a and c
    plan = fix_drops(20, duplicates=[5])
    assert plan.frames[5] == Synth(4, 6, 0.5)
    assert [op for i, op in enumerate(plan.frames) if i != 5] == [Copy(i) for i in range(20) if i != 5]
    assert len(plan.frames) == 20
    assert plan.synthesized == 1
    assert plan.runs[0].action == INTERPOLATE


def test_run_of_three_gets_quarter_times_and_a_window_of_five():
    plan = fix_drops(30, duplicates=[10, 11, 12])
    assert plan.frames[10:13] == (Synth(9, 13, 0.25), Synth(9, 13, 0.5), Synth(9, 13, 0.75))
    assert plan.synthesized == 3
    run = plan.runs[0]
    assert (run.start, run.length, run.left, run.right, run.action) == (10, 3, 9, 13, INTERPOLATE)
    assert plan.max_lookahead == 5  # frames 9..13: max_run + 2
    assert plan.needs(11) == (9, 13)
    assert plan.keep_from(10) == 9
    assert plan.keep_from(13) == 13


def test_run_of_two_gets_thirds():
    plan = fix_drops(30, duplicates=[4, 5])
    assert [op.t for op in plan.frames[4:6]] == pytest.approx([1 / 3, 2 / 3])
    assert plan.frames[4].left == 3 and plan.frames[4].right == 6


def test_freeze_longer_than_max_run_is_kept():
    plan = fix_drops(40, duplicates=range(10, 20))
    assert plan.frames == tuple(Copy(i) for i in range(40))
    assert [r.action for r in plan.runs] == [KEEP_FREEZE]
    assert plan.synthesized == 0


def test_max_run_itself_is_still_repaired():
    detection = detect(scores_with(40, range(10, 14)), DetectionSettings(max_run=4))
    plan = plan_fix_drops(40, detection)
    assert plan.runs[0].action == INTERPOLATE
    assert plan.synthesized == 4


def test_duplicate_at_frame_one_is_repaired():
    plan = fix_drops(20, duplicates=[1])
    assert plan.frames[1] == Synth(0, 2, 0.5)


def test_duplicate_at_last_frame_is_kept_as_an_edge():
    plan = fix_drops(20, duplicates=[19])
    assert plan.frames[19] == Copy(19)
    assert plan.runs[0].action == KEEP_EDGE
    assert plan.runs[0].right == 20


def test_duplicate_just_before_a_cut_is_not_blended_across_it():
    # frames 9 | 10 is a cut; frame 9 repeats frame 8: interpolating 8 -> 10 would blend two shots
    plan = fix_drops(30, duplicates=[9], cuts=[10])
    assert plan.frames[9] == Copy(9)
    run = plan.runs[0]
    assert run.action == KEEP_CUT
    assert "scene cut between frames 9 and 10" in run.detail


def test_duplicate_just_after_a_cut_is_repaired_within_the_new_shot():
    # cut between 9 and 10; frame 11 repeats frame 10: both neighbours (10, 12) are in the new shot
    plan = fix_drops(30, duplicates=[11], cuts=[10])
    assert plan.frames[11] == Synth(10, 12, 0.5)


def test_plan_fix_drops_rejects_a_frame_count_that_does_not_match():
    with pytest.raises(ValueError, match="n_frames=10"):
        plan_fix_drops(10, detect(scores_with(12)))


def test_fix_drops_iterates_in_output_order_keeping_source_pts():
    plan = fix_drops(8, duplicates=[3])
    assert len(plan.frames) == 8 and plan.out_rate is None  # times from the source timeline, not a new one
    assert plan.frames[3] == Synth(2, 4, 0.5) and plan.position(3) == Fraction(3)
    assert plan.positions is None and [plan.position(j) for j in range(8)] == list(range(8))


def test_fix_drops_json_round_trip():
    plan = fix_drops(30, duplicates=[5, 10, 11], cuts=[20])
    text = json.dumps(plan.to_dict())
    again = FixDropsPlan.from_dict(json.loads(text))
    assert again == plan
    assert json.loads(text)["synthesized"] == 3


# --- fix-drops with timestamp gaps ---------------------------------------------------------------------------


class Gap:  # the shape plan_fix_drops reads from retime.timing.Gap
    def __init__(self, index: int, missing: int) -> None:
        self.index, self.missing = index, missing


def with_gaps(n_frames: int, gaps, duplicates=(), cuts=()) -> FixDropsPlan:
    # a gap's first frame has moved for k + 1 intervals: its score is (k + 1) times the motion
    s = scores_with(n_frames, duplicates, cuts)
    for g in gaps:
        if g.index not in cuts:
            s[g.index - 1] = MOTION * (g.missing + 1)
    detection = detect(s)
    assert detection.duplicates == sorted(duplicates) and detection.cuts == sorted(cuts)
    return plan_fix_drops(n_frames, detection, gaps)


def test_a_gap_of_two_gets_two_frames_at_thirds_between_its_neighbours():
    plan = with_gaps(10, [Gap(5, 2)])
    assert len(plan.frames) == 12 and plan.synthesized == 2
    assert plan.frames[:5] == tuple(Copy(i) for i in range(5))
    assert plan.frames[5:7] == (Synth(4, 5, 1 / 3), Synth(4, 5, 2 / 3))
    assert plan.frames[7:] == tuple(Copy(i) for i in range(5, 10))
    assert plan.positions == tuple(Fraction(p) for p in [0, 1, 2, 3, 4, Fraction(13, 3), Fraction(14, 3),
                                                           5, 6, 7, 8, 9])
    assert [(g.index, g.missing, g.action) for g in plan.gaps] == [(5, 2, "interpolate")]
    assert plan.runs == () and plan.max_lookahead == 2


def test_a_gap_longer_than_max_run_is_held():
    plan = with_gaps(12, [Gap(5, 4)])
    assert plan.frames[5:9] == (Copy(4),) * 4 and plan.synthesized == 0
    assert plan.gaps[0].action == KEEP_HOLD and "max_run 3" in plan.gaps[0].detail


def test_a_gap_across_a_scene_cut_is_held_not_blended():
    plan = with_gaps(12, [Gap(6, 1)], cuts=[6])
    assert plan.frames[6] == Copy(5) and plan.synthesized == 0
    assert plan.gaps[0].action == KEEP_CUT


def test_a_repeat_next_to_a_gap_is_repaired_with_it_evenly():
    # 4, 5 (repeats 4), [one frame missing], 6: three output intervals between the distinct frames 4 and 6
    plan = with_gaps(10, [Gap(6, 1)], duplicates=[5])
    assert plan.frames[4:8] == (Copy(4), Synth(4, 6, 1 / 3), Synth(4, 6, 2 / 3), Copy(6))
    assert plan.runs[0].action == INTERPOLATE and plan.gaps[0].action == INTERPOLATE
    assert "timestamp gaps" in plan.runs[0].detail
    assert plan.positions[4:8] == (4, 5, Fraction(11, 2), 6)


def test_a_gap_right_after_a_freeze_is_filled_and_the_freeze_kept():
    # 3 .. 8 hold frame 2's picture (a freeze), then a frame is missing where the motion resumes, then 9
    plan = with_gaps(14, [Gap(9, 1)], duplicates=range(3, 9))
    assert plan.frames[2:9] == tuple(Copy(i) for i in range(2, 9))  # the freeze stays as decoded, a pause
    assert plan.frames[9:11] == (Synth(8, 9, 1 / 2), Copy(9))  # from the freeze's last frame: a window of two
    assert plan.runs[0].action == KEEP_FREEZE and plan.max_lookahead == 2
    assert [(g.index, g.action) for g in plan.gaps] == [(9, INTERPOLATE)] and "after a freeze" in plan.gaps[0].detail
    assert plan.positions[9] == Fraction(17, 2)
    # a gap inside the freeze (between two of its copies) is held; one too long to fill after it is held as well
    frozen = list(range(3, 11))
    scores = scores_with(16, frozen)
    scores[10] = MOTION * 2  # frame 11 has moved for two intervals; frame 6 still holds the freeze's picture
    detection = detect(scores)
    assert detection.duplicates == frozen
    inside = plan_fix_drops(16, detection, [Gap(6, 1), Gap(11, 1)])
    assert [(g.index, g.action) for g in inside.gaps] == [(6, KEEP_HOLD), (11, INTERPOLATE)]
    assert inside.synthesized == 1
    long = with_gaps(16, [Gap(9, 4)], duplicates=range(3, 9))
    assert [g.action for g in long.gaps] == [KEEP_HOLD] and long.synthesized == 0
    # max_run repeats with gaps inside and after them: not a freeze, so more than max_run frames to make are held
    scores = scores_with(12, [3, 4, 5])
    scores[5] = MOTION * 2  # frame 6 has moved for two intervals
    short = plan_fix_drops(12, detect(scores), [Gap(4, 1), Gap(6, 1)])
    assert [g.action for g in short.gaps] == [KEEP_HOLD, KEEP_HOLD] and short.synthesized == 0
    assert short.runs[0].detail.startswith("3 duplicates (with 2 frame(s) of timestamp gaps) > max_run 3")


def test_gap_plan_json_round_trip_and_checks():
    plan = with_gaps(20, [Gap(3, 1), Gap(9, 4)], duplicates=[14])
    again = FixDropsPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again == plan and len(again.frames) == 25
    with pytest.raises(ValueError, match="out of range"):
        plan_fix_drops(10, detect(scores_with(10)), [Gap(10, 1)])


# --- upsampling -----------------------------------------------------------------------------------------------


def cfr_times(n: int, rate: Fraction) -> list[Fraction]:
    return [Fraction(i) / rate for i in range(n)]


def test_factor_two_alternates_copies_and_halfway_frames():
    rate = Fraction(25)
    times = cfr_times(10, rate)
    plan = plan_upsample(times, 2 * rate, cuts=[], end_time=Fraction(10) / rate)
    assert len(plan) == 20  # same duration: 20 / 50 s = 10 / 25 s
    assert plan.frames[0::2][:9] == tuple(Copy(i) for i in range(9))
    assert plan.frames[1::2][:9] == tuple(Synth(i, i + 1, 0.5) for i in range(9))
    assert plan.frames[18:] == (Copy(9), Copy(9))  # after the last source frame: hold it
    assert plan.synthesized == 9
    assert plan.max_lookahead == 2


def test_factor_four_gives_quarter_times():
    rate = Fraction(30)
    plan = plan_upsample(cfr_times(5, rate), 4 * rate, cuts=[], end_time=Fraction(5, 30))
    assert len(plan) == 20
    assert plan.frames[4:8] == (Copy(1), Synth(1, 2, 0.25), Synth(1, 2, 0.5), Synth(1, 2, 0.75))


def test_25_to_60_fps():
    times = cfr_times(25, Fraction(25))
    plan = plan_upsample(times, Fraction(60), cuts=[], end_time=Fraction(1))
    assert len(plan) == 60
    # output j at j/60 s: j = 0, 12, 24, ... fall exactly on source frames (every 5 source frames)
    for j in range(0, 60, 12):
        assert plan.frames[j] == Copy(j * 25 // 60)
    # j = 1 at 1/60 s lies between source 0 (0 s) and 1 (1/25 s): t = (1/60) / (1/25) = 5/12
    assert plan.frames[1] == Synth(0, 1, 5 / 12)
    assert plan.frames[7].t == pytest.approx(float(Fraction(7, 60) * 25 - 2))
    assert plan.synthesized == 60 - 5 - 2  # 5 exact copies inside, 2 after the last frame (58/60, 59/60 s)


def test_ntsc_rate_doubling_is_exact():
    rate = Fraction(30000, 1001)
    times = [Fraction(1001 * i, 30000) for i in range(100)]
    plan = plan_upsample(times, 2 * rate, cuts=[], end_time=Fraction(1001 * 100, 30000))
    assert len(plan) == 200
    assert plan.frames[0::2] == tuple(Copy(i) for i in range(100))  # Fractions: no float drift
    assert plan.frames[1:199:2] == tuple(Synth(i, i + 1, 0.5) for i in range(99))
    assert plan.out_rate == Fraction(60000, 1001)
    assert plan.time_base == Fraction(1001, 60000)
    assert plan.time_of(3) == Fraction(3 * 1001, 60000)
    assert [plan.time_of(j) for j in range(4)] == [j * Fraction(1001, 60000) for j in range(4)]


def test_vfr_source_times_give_t_from_the_actual_gaps():
    # source frames at 0, 0.1, 0.3 (a gap: a dropped frame in a VFR file), 0.4 s; output at 20 fps
    times = [Fraction(0), Fraction(1, 10), Fraction(3, 10), Fraction(4, 10)]
    plan = plan_upsample(times, Fraction(20), cuts=[], end_time=Fraction(1, 2))
    assert len(plan) == 10
    assert plan.frames[:8] == (
        Copy(0), Synth(0, 1, 0.5), Copy(1),
        Synth(1, 2, 0.25), Synth(1, 2, 0.5), Synth(1, 2, 0.75),
        Copy(2), Synth(2, 3, 0.5),
    )
    assert plan.frames[8:] == (Copy(3), Copy(3))


def test_start_time_offset_is_kept():
    times = [Fraction(1, 2) + Fraction(i, 10) for i in range(5)]
    plan = plan_upsample(times, Fraction(20), cuts=[], end_time=Fraction(1))
    assert plan.start_time == Fraction(1, 2)
    assert len(plan) == 10
    assert plan.frames[1] == Synth(0, 1, 0.5)


def test_upsample_never_blends_across_a_cut():
    rate = Fraction(25)
    times = cfr_times(10, rate)
    plan = plan_upsample(times, 4 * rate, cuts=[5], end_time=Fraction(10) / rate)
    # between source 4 and 5 (the cut): t = 0.25 and 0.5 take frame 4, t = 0.75 takes frame 5
    assert plan.frames[16:21] == (Copy(4), Copy(4), Copy(4), Copy(5), Copy(5))
    assert not any(isinstance(op, Synth) and op.left == 4 for op in plan.frames)
    assert plan.frames[21] == Synth(5, 6, 0.25)


def test_upsample_streaming_window():
    plan = plan_upsample(cfr_times(6, Fraction(10)), Fraction(20), cuts=[], end_time=Fraction(6, 10))
    assert plan.needs(3) == (1, 2)
    assert plan.keep_from(3) == 1
    assert plan.keep_from(len(plan)) == 6


def test_upsample_single_frame_source_holds_it():
    plan = plan_upsample([Fraction(0)], Fraction(50), cuts=[], end_time=Fraction(1, 25))
    assert plan.frames == (Copy(0), Copy(0))
    assert plan.max_lookahead == 1


@pytest.mark.parametrize("times, rate, end, message", [
    ([], 50, 1, "no source frame times"),
    ([Fraction(0), Fraction(0)], 50, 1, "increase strictly"),
    ([Fraction(0), Fraction(1, 25)], 0, 1, "out_rate must be > 0"),
    ([Fraction(0), Fraction(1, 25)], 50, 0, "end_time"),
])
def test_upsample_rejects_bad_inputs(times, rate, end, message):
    with pytest.raises(ValueError, match=message):
        plan_upsample(times, Fraction(rate), cuts=[], end_time=Fraction(end))


def test_upsample_json_round_trip():
    times = [Fraction(1001 * i, 30000) for i in range(12)]
    plan = plan_upsample(times, Fraction(60000, 1001), cuts=[6], end_time=Fraction(1001 * 12, 30000))
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["out_rate"] == "60000/1001"
    assert UpsamplePlan.from_dict(data) == plan


def test_synth_validates_its_fields():
    with pytest.raises(ValueError, match="t must be in"):
        Synth(0, 1, 1.0)
    with pytest.raises(ValueError, match="left < right"):
        Synth(3, 3, 0.5)
