"""retime.pipeline end to end on synthetic clips, with a cheap blending interpolator injected in place of the model."""

from __future__ import annotations

import math
from fractions import Fraction

import av
import numpy as np
import pytest

from conftest import (
    AT_CUT,
    CUT,
    DUPLICATES,
    FREEZE,
    N_FRAMES,
    REPAIRABLE,
    FailingInterpolator,
    moving_frames,
    packets,
    video_facts,
    write_clip,
)
from retime.plan import Copy, Synth
from retime.detect import DetectionSettings
from retime.errors import InputError, OutputError, UsageError
from retime.media import EncodeSettings, rgb_to_frame, to_rgb
from retime.metrics import psnr
from retime.pipeline import analyse, fix_drops, parse_rate, snap_times, upsample

FFV1 = EncodeSettings(codec="ffv1")
FAST = EncodeSettings(preset="ultrafast")


def _precision_recall(found, truth):
    found, truth = set(found), set(truth)
    hits = len(found & truth)
    return (hits / len(found) if found else 1.0), (hits / len(truth) if truth else 1.0)


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


# --- analysis -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lossless", "lossy"])
def test_analyse_finds_every_duplicate_and_the_cut(clips, name):
    a = analyse(clips[name].path)
    assert a.n_frames == N_FRAMES
    assert _precision_recall(a.detection.duplicates, DUPLICATES) == (1.0, 1.0)
    assert a.detection.cuts == [CUT]
    actions = {r.start: r.action for r in a.plan.runs}
    assert actions == {5: "interpolate", 12: "interpolate", 20: "interpolate", 29: "keep-cut",
                       34: "keep-freeze"}
    assert a.plan.synthesized == len(REPAIRABLE)
    assert a.times[1] == Fraction(1, 25) and a.end_time == Fraction(N_FRAMES, 25)


def test_analyse_leaves_a_slow_shot_alone(clips):
    a = analyse(clips["static"].path)
    assert a.detection.duplicates == [] and a.plan.synthesized == 0


def test_analyse_to_dict_lists_duplicates_with_times(clips):
    data = analyse(clips["lossless"].path).to_dict()
    assert [d["frame"] for d in data["duplicates"]] == DUPLICATES
    first = data["duplicates"][0]
    assert first == {"frame": 5, "time": 0.2, "score": first["score"], "reason": first["reason"],
                     "action": "interpolate"}
    assert first["score"] < 0.1 and "floor" in first["reason"]  # a lossless repeat: identical pictures
    assert data["cuts"][0]["frame"] == CUT and data["frames"] == N_FRAMES
    assert data["plan"]["kind"] == "fix-drops" and len(data["plan"]["frames"]) == N_FRAMES


def test_a_fast_pan_is_not_a_cut_and_upsample_interpolates_every_pair(tmp_path, blend):
    # 14 pixels per frame on a 96-pixel-wide picture: the grey levels jump by more than scene_cut every frame,
    # but the colours stay those of the same picture
    pan = [((f.astype(np.float32) - 128) * 1.5 + 128).clip(0, 255).round().astype(np.uint8)
           for f in moving_frames(16, speed=14, seed=5)]
    src = write_clip(tmp_path / "pan.mkv", pan).path
    a = analyse(src)
    assert min(a.scores) > DetectionSettings().scene_cut
    assert a.detection.cuts == [] and len(a.detection.fast_motion) == 15
    assert max(a.colours) < DetectionSettings().cut_colour
    result = upsample(src, tmp_path / "up.mkv", factor=2, encode=FFV1, interpolator=blend)
    assert [result.plan.frames[2 * i + 1] for i in range(15)] == [Synth(i, i + 1, 0.5) for i in range(15)]
    assert len(blend.calls) == 15


def tinted(frames, offset):
    return [(f * 0.5 + np.array(offset)).round().astype(np.uint8) for f in frames]


def test_a_cut_between_shots_of_the_same_brightness_is_still_a_cut(tmp_path, blend):
    # a warm shot, then a cool one of the same mean brightness (within 3 grey levels): the grey levels jump by
    # about twice the motion (no spike), the colours change completely
    first = tinted(moving_frames(20, seed=0), (120, 60, 0))
    second = tinted(moving_frames(20, seed=7, speed=2, reverse=True), (0, 100, 120))
    src = write_clip(tmp_path / "cut.mkv", first + second).path
    a = analyse(src)
    assert a.detection.cuts == [20] and a.detection.fast_motion == []
    assert a.scores[19] < DetectionSettings().scene_cut
    result = upsample(src, tmp_path / "up.mkv", factor=2, encode=FFV1, interpolator=blend)
    assert result.plan.frames[39] == Copy(19)  # halfway between frames 19 and 20: a copy, never a blend
    assert all(op.left != 19 for op in result.plan.frames if isinstance(op, Synth))
    assert len(blend.calls) == 38
    data = a.to_dict()
    assert data["cuts"][0]["frame"] == 20 and "colour" in data["cuts"][0]["reason"]
    assert len(data["colours"]) == 39


def test_analyse_needs_two_frames(clips):
    with pytest.raises(InputError, match="at least 2"):
        analyse(clips["one_frame"].path)


# --- fix-drops ------------------------------------------------------------------------------------------------


def test_fix_drops_lossless(clips, tmp_path, blend):
    src = clips["lossless"].path
    out = tmp_path / "fixed.mkv"
    result = fix_drops(src, out, encode=FFV1, interpolator=blend)
    a, b = video_facts(src), video_facts(out)
    assert b["n"] == a["n"] == N_FRAMES
    assert b["times"] == a["times"] and b["rate"] == a["rate"]
    assert b["container_duration"] == a["container_duration"]
    assert result.frames_written == N_FRAMES and result.synthesized == len(REPAIRABLE)
    # every frame not repaired is bit-exact, the kept drop at the cut and the freeze included
    for i in range(N_FRAMES):
        if i not in REPAIRABLE:
            assert np.array_equal(a["planes"][i], b["planes"][i]), f"frame {i} changed"
    # repaired frames are new pictures, not the duplicate
    for i in REPAIRABLE:
        assert np.abs(b["planes"][i].astype(int) - a["planes"][i].astype(int)).mean() > 2, f"frame {i} not repaired"
    # runs of k duplicates are synthesized at m / (k + 1), one call per run
    assert blend.calls == [(0.5,), (1 / 3, 2 / 3), (0.25, 0.5, 0.75)]
    assert packets(out, "audio") == packets(src, "audio")
    assert _files(tmp_path) == ["fixed.mkv"]
    # bounded memory: never more source frames held than the plan's look-ahead (k + 2 for the run of 3)
    assert result.peak_window <= result.plan.max_lookahead == 5


def test_fix_drops_lossy_keeps_timing_colour_and_audio(clips, tmp_path, blend):
    src = clips["lossy"].path
    out = tmp_path / "fixed.mp4"
    fix_drops(src, out, encode=FAST, interpolator=blend)
    a, b = video_facts(src), video_facts(out)
    assert b["n"] == a["n"] and b["times"] == a["times"] and b["rate"] == a["rate"]
    assert b["duration"] == a["duration"]
    assert b["codec"] == "h264" and b["colour"] == (1, 1, 1, 1)
    assert packets(out, "audio") == packets(src, "audio")
    # after the repair, only the frames that were kept on purpose are still duplicates
    assert analyse(out).detection.duplicates == AT_CUT + FREEZE


@pytest.mark.parametrize("name, frame", [("lossy", 5), ("full_range", 4)])
def test_synthesized_frames_use_the_input_colour_matrix_and_range(clips, tmp_path, blend, name, frame):
    # a blend made in RGB must come back as that blend: the same matrix and range on the way in and out
    src, out = clips[name].path, tmp_path / "o.mkv"
    fix_drops(src, out, encode=FFV1, interpolator=blend)
    with av.open(str(src)) as c:
        tags = c.streams.video[0].codec_context
        rgb_in = [f.to_ndarray(format="rgb24", src_color_range=f.color_range or None) for f in c.decode(video=0)]
    with av.open(str(out)) as c:
        f = list(c.decode(video=0))[frame]
        assert (f.colorspace, f.color_range) == (tags.colorspace, tags.color_range)
        rgb_out = f.to_ndarray(format="rgb24", src_color_range=f.color_range or None)
    blend_rgb = ((rgb_in[frame - 1].astype(np.float32) + rgb_in[frame + 1]) / 2).round().astype(np.uint8)
    # what that blend looks like after a correct trip through the input's pixel format, matrix and range
    expected = to_rgb(rgb_to_frame(blend_rgb, f.format.name, int(tags.colorspace), int(tags.color_range)))
    assert np.abs(rgb_out.astype(int) - expected).mean() < 0.05
    # the trip loses little: closer to the blend than libswscale's own rgb24 -> YUV (chroma from one pixel)
    plain = av.VideoFrame.from_ndarray(blend_rgb, format="rgb24").reformat(
        format=f.format.name, dst_colorspace=tags.colorspace, dst_color_range=tags.color_range)
    plain_rgb = plain.to_ndarray(format="rgb24", src_colorspace=tags.colorspace, src_color_range=tags.color_range)
    assert psnr(rgb_out, blend_rgb) > psnr(plain_rgb, blend_rgb) + 1.0
    # and a wrong matrix (BT.601) would be far off: the check can tell
    wrong = av.VideoFrame.from_ndarray(blend_rgb, format="rgb24").reformat(
        format=f.format.name, dst_colorspace=5, dst_color_range=tags.color_range)
    assert np.abs(wrong.to_ndarray(format="rgb24", src_colorspace=tags.colorspace, src_color_range=tags.color_range)
                  .astype(int) - expected).mean() > 1


def test_fix_drops_keeps_vfr_timestamps(clips, tmp_path, blend):
    src = clips["vfr"].path
    out = tmp_path / "vfr.mkv"
    fix_drops(src, out, encode=FFV1, interpolator=blend)
    assert video_facts(out)["times"] == video_facts(src)["times"]
    assert len(blend.calls) == 2


def test_fix_drops_keeps_ten_bits_and_rotation(clips, tmp_path, blend):
    fix_drops(clips["tenbit"].path, tmp_path / "t.mp4", encode=FAST, interpolator=blend)
    assert video_facts(tmp_path / "t.mp4")["pix_fmt"] == "yuv420p10le"
    fix_drops(clips["rotated"].path, tmp_path / "r.mp4", encode=FAST, interpolator=blend)
    assert video_facts(tmp_path / "r.mp4")["rotation"] == 90


def test_fix_drops_without_duplicates_never_builds_a_model(clips, tmp_path):
    # no interpolator injected: the real one would need weights and torch; nothing to synthesize, so none is built
    result = fix_drops(clips["clean"].path, tmp_path / "c.mkv", encode=FFV1)
    assert result.synthesized == 0 and result.device is None
    a, b = video_facts(clips["clean"].path), video_facts(tmp_path / "c.mkv")
    assert all(np.array_equal(x, y) for x, y in zip(a["planes"], b["planes"]))


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt(), OSError(28, "No space left on device")])
def test_an_error_mid_run_leaves_nothing(clips, tmp_path, exc):
    out = tmp_path / "never.mp4"
    with pytest.raises(type(exc)):
        fix_drops(clips["lossy"].path, out, encode=FAST, interpolator=FailingInterpolator(after=1, exc=exc))
    assert _files(tmp_path) == []


def test_output_refusals(clips, tmp_path, blend):
    src = clips["lossless"].path
    with pytest.raises(OutputError, match="is the input"):
        fix_drops(src, src, interpolator=blend, overwrite=True)
    existing = tmp_path / "exists.mkv"
    existing.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="already exists"):
        fix_drops(src, existing, interpolator=blend)
    assert existing.read_bytes() == b"keep me"
    fix_drops(src, existing, interpolator=blend, encode=FFV1, overwrite=True)
    assert video_facts(existing)["n"] == N_FRAMES
    with pytest.raises(UsageError, match="codec"):
        fix_drops(src, tmp_path / "x.mkv", interpolator=blend, encode=EncodeSettings(codec="prores-ish"))
    assert _files(tmp_path) == ["exists.mkv"]


def test_detection_settings_are_checked():
    with pytest.raises(UsageError, match="max_run"):
        DetectionSettings(max_run=0)


# --- upsample -------------------------------------------------------------------------------------------------


def test_upsample_factor_two(clips, tmp_path, blend):
    src = clips["lossless"].path
    out = tmp_path / "up.mkv"
    result = upsample(src, out, factor=2, encode=FFV1, interpolator=blend)
    a, b = video_facts(src), video_facts(out)
    assert b["n"] == 2 * N_FRAMES == result.frames_written
    assert b["times"] == [Fraction(j, 50) for j in range(2 * N_FRAMES)]
    assert b["rate"] == 50
    assert b["container_duration"] == a["container_duration"]
    # source frames pass through bit-exact at even outputs
    for i in range(N_FRAMES):
        assert np.array_equal(b["planes"][2 * i], a["planes"][i]), f"source frame {i} changed"
    # nothing blended across the cut (between 29 and 30) nor past the last frame
    synthesized_between = [op.left for op in result.plan.frames if hasattr(op, "t")]
    assert CUT - 1 not in synthesized_between
    assert len(blend.calls) == result.synthesized == N_FRAMES - 2
    assert packets(out, "audio") == packets(src, "audio")


def test_upsample_to_ntsc_rate(clips, tmp_path, blend):
    src = clips["lossy"].path
    out = tmp_path / "up.mp4"
    upsample(src, out, fps="60000/1001", encode=FAST, interpolator=blend)
    facts = video_facts(out)
    expected = math.ceil(Fraction(N_FRAMES, 25) * Fraction(60000, 1001))
    assert facts["n"] == expected
    assert facts["times"] == [Fraction(1001 * j, 60000) for j in range(expected)]
    assert facts["rate"] == Fraction(60000, 1001)
    assert packets(out, "audio") == packets(src, "audio")


def test_upsample_makes_vfr_constant(clips, tmp_path, blend):
    out = tmp_path / "cfr.mkv"
    upsample(clips["vfr"].path, out, fps=50, encode=FFV1, interpolator=blend)
    times = video_facts(out)["times"]
    assert set(np.diff(times)) == {Fraction(1, 50)}
    end = analyse(clips["vfr"].path).end_time  # the last frame's time plus its duration, as the container says
    assert Fraction(int(clips["vfr"].pts[-1]), 1000) < end <= Fraction(int(clips["vfr"].pts[-1]) + 67, 1000)
    assert times[0] == 0 and times[-1] < end <= times[-1] + Fraction(1, 50)


def test_upsample_passes_source_frames_through_despite_rounded_timestamps(clips, tmp_path, blend):
    # 30000/1001 fps in Matroska: the source PTS are rounded to 1 ms, yet they are the output grid's even frames
    src = clips["ntsc_mkv"].path
    result = upsample(src, tmp_path / "u.mkv", factor=2, encode=FFV1, interpolator=blend)
    assert result.frames_written == 24
    assert [type(op).__name__ for op in result.plan.frames[:4]] == ["Copy", "Synth", "Copy", "Synth"]
    assert all(t == (0.5,) for t in blend.calls) and len(blend.calls) == 11
    a, b = video_facts(src), video_facts(tmp_path / "u.mkv")
    assert all(np.array_equal(b["planes"][2 * i], a["planes"][i]) for i in range(12))


def test_snap_times():
    ms = [Fraction(p, 1000) for p in (0, 33, 67, 100)]
    rate = Fraction(60000, 1001)
    assert snap_times(ms, rate, tolerance=Fraction(1, 2000)) == [Fraction(1001 * 2 * i, 60000) for i in range(4)]
    # off the grid by more than the tolerance: left alone
    assert snap_times([Fraction(0), Fraction(1, 100)], Fraction(60), tolerance=Fraction(1, 2000))[1] == Fraction(1, 100)
    # two frames never snap onto the same grid point
    close = snap_times([Fraction(0), Fraction(10, 1000), Fraction(11, 1000)], Fraction(100),
                       tolerance=Fraction(1, 1000))
    assert close[1] < close[2]


@pytest.mark.parametrize("kwargs, words", [
    ({"factor": 1}, "factor"),
    ({"factor": 2, "fps": 50}, "either"),
    ({"fps": "fast"}, "--fps"),
    ({"fps": "-5"}, "--fps"),
])
def test_upsample_usage_errors(clips, tmp_path, blend, kwargs, words):
    with pytest.raises(UsageError, match=words):
        upsample(clips["clean"].path, tmp_path / "u.mkv", interpolator=blend, **kwargs)
    assert _files(tmp_path) == []


def test_parse_rate():
    assert parse_rate("60000/1001") == Fraction(60000, 1001)
    assert parse_rate("59.94") == Fraction(5994, 100)
    assert parse_rate(60) == 60


# --- the default engine loads beside pass 1 ------------------------------------------------------------------------

def test_the_engine_builds_in_the_background_and_hands_over_its_error():
    import threading

    from retime.errors import ModelError
    from retime.pipeline._model import _Warm

    release, built = threading.Event(), object()

    def slow() -> object:
        release.wait(5)
        return built

    warm = _Warm(slow)  # returns at once: the build waits for `release` in its own thread
    assert warm.made == [] and warm._thread.is_alive()
    release.set()
    assert warm() is built and warm.made == [built]

    def broken() -> object:
        raise ModelError("no weights here")

    failed = _Warm(broken)
    failed._thread.join()
    with pytest.raises(ModelError, match="no weights here"):
        failed.check()  # known without waiting: pass 1 calls this at every progress tick
    with pytest.raises(ModelError):
        failed()


def test_a_missing_model_stops_pass_1_early_and_leaves_nothing(clips, tmp_path, monkeypatch):
    import retime.pipeline as pipeline
    from retime.errors import ModelError

    def missing() -> object:
        raise ModelError("model weights not found")

    monkeypatch.setattr(pipeline._model, "_default_interpolator", lambda device, model=None: missing)
    ticks = []
    with pytest.raises(ModelError):
        upsample(clips["lossless"].path, tmp_path / "o.mkv", factor=2, encode=FFV1,
                 progress=lambda stage, done, total: ticks.append((stage, done)))
    assert list(tmp_path.iterdir()) == []
    assert not any(stage != "analyse" for stage, _ in ticks)  # it never reached pass 2


@pytest.mark.parametrize("interrupt", [False, True])
def test_a_run_never_ends_while_the_engine_is_still_building(clips, tmp_path, monkeypatch, interrupt):
    """A process that exits while the build thread is inside torch aborts (exit -6, "terminate called without an
    active exception") instead of exiting with its code: seen with SIGHUP under load. Every run, finished or
    interrupted, waits for the build first."""
    import threading
    import time

    import retime.pipeline as pipeline

    finished = threading.Event()

    def slow() -> object:  # a clean clip never needs the engine, so this build outlives the run unless waited for
        time.sleep(1.5)
        finished.set()
        return object()

    monkeypatch.setattr(pipeline._model, "_default_interpolator", lambda device, model=None: slow)

    def progress(stage: str, done: int, total: int | None) -> None:
        if interrupt and stage == "analyse" and done == 2:
            raise KeyboardInterrupt

    if interrupt:
        with pytest.raises(KeyboardInterrupt):
            fix_drops(clips["clean"].path, tmp_path / "o.mkv", encode=FFV1, progress=progress)
    else:
        assert fix_drops(clips["clean"].path, tmp_path / "o.mkv", encode=FFV1, progress=progress).synthesized == 0
    assert finished.is_set()


def test_waiting_for_the_engine_build_outlasts_an_interrupt():
    """In CPython 3.11 a signal that interrupts ``Thread.join`` marks the thread stopped while it still runs; the
    wait must hold until the build really ended, and then pass the interrupt on."""
    import signal
    import threading
    import time

    from retime.pipeline._model import _Warm
    from retime.pipeline._threads import wait_through_interrupts

    finished = threading.Event()

    def slow() -> object:
        time.sleep(0.6)
        finished.set()
        return object()

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        warm = _Warm(slow)
        signal.setitimer(signal.ITIMER_REAL, 0.1, 0.1)  # interrupt the wait again and again
        with pytest.raises(KeyboardInterrupt):
            warm.settle()
        signal.setitimer(signal.ITIMER_REAL, 0)
        assert finished.is_set()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert wait_through_interrupts(threading.Event(), timeout=0.05) is False
