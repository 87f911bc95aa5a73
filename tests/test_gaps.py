"""fix-drops and upsample on VFR captures with timestamp gaps: a CFR clip made with PyAV, frames deleted at seeded
positions with the other PTS kept; the deleted frames are the truth for the filled ones.

The picture is a texture whose brightness rises 4 grey levels per frame: the true frame at any instant is linear in
time, so the stand-in blending interpolator gives the truth at the right t, and a frame made at the wrong t (or a
copy) is off by grey levels.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import HEIGHT, WIDTH, packets, texture, video_facts, write_clip
from retime.errors import UsageError
from retime.media import EncodeSettings
from retime.pipeline import analyse, fix_drops, upsample
from retime.plan import Copy

FFV1 = EncodeSettings(codec="ffv1")
N = 40
RATE = 25


def fade(n: int = N) -> list[np.ndarray]:
    """n frames of a low-contrast texture brightening 4 grey levels per frame (linear in time, no clipping)."""
    tex = texture(HEIGHT, WIDTH, 5).astype(np.float32) * 0.3
    return [(tex + 20 + 4 * i).round().astype(np.uint8) for i in range(n)]


def seeded_deletions(seed: int, n: int = N, runs: int = 3) -> list[int]:
    """Runs of 1-3 deleted frames at seeded positions, at least two kept frames between runs, never the first or
    the last frame."""
    rng = np.random.default_rng(seed)
    while True:
        starts = sorted(rng.choice(np.arange(2, n - 5), runs, replace=False))
        lengths = rng.integers(1, 4, runs)
        if all(b - (a + k) >= 2 for a, b, k in zip(starts, starts[1:], lengths)):
            return [int(s + m) for s, k in zip(starts, lengths) for m in range(k)]


def gappy_clip(path: Path, deleted: list[int], *, time_base: Fraction, audio: bool) -> list[int]:
    """Write the fade without the ``deleted`` frames, the others at their CFR PTS; returns the kept indices."""
    truth = fade()
    kept = [i for i in range(N) if i not in set(deleted)]
    write_clip(path, [truth[i] for i in kept], pts=[round(Fraction(i, RATE) / time_base) for i in kept],
               time_base=time_base, audio=audio)
    return kept


def stored(rgb: np.ndarray) -> np.ndarray:
    """An RGB frame as the clips store it (yuv420p planes)."""
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray()


@pytest.mark.parametrize("ext, time_base, audio, seed", [
    ("mp4", Fraction(1, 12800), True, 0),
    ("mkv", Fraction(1, 1000), False, 1),
    ("mkv", Fraction(1, 1000), True, 2),
])
def test_fix_drops_fills_timestamp_gaps(tmp_path, blend, ext, time_base, audio, seed):
    deleted = seeded_deletions(seed)
    src, out = tmp_path / f"gaps.{ext}", tmp_path / f"fixed.{ext}"
    kept = gappy_clip(src, deleted, time_base=time_base, audio=audio)
    result = fix_drops(src, out, encode=FFV1, interpolator=blend)
    timing = result.analysis.timing
    assert timing.kind == "cfr-with-gaps" and timing.rate == RATE and timing.missing == len(deleted)
    a, b = video_facts(src), video_facts(out)
    # CFR at the nominal rate, the original frame count, times and duration
    assert b["n"] == N == result.frames_written and result.synthesized == len(deleted)
    assert b["times"] == [Fraction(i, RATE) for i in range(N)]
    assert result.out_rate == RATE
    if ext == "mp4":
        assert a["duration"] == b["duration"] == Fraction(N, RATE)
        assert b["rate"] == RATE  # the input's average rate was lower: the gaps
        assert a["rate"] < RATE
    assert b["container_duration"] == a["container_duration"]
    truth = fade()
    for j, i in enumerate(kept):  # every source frame bit-exact at its own time
        assert all(np.array_equal(x, y) for x, y in zip(b["planes"][i], a["planes"][j])), f"frame {i} changed"
    for i in deleted:  # filled frames: the truth, up to the RGB round trip of a synthesized frame
        error = np.abs(b["planes"][i].astype(int) - stored(truth[i]).astype(int)).mean()
        assert error < 1.0, f"filled frame {i} is {error:.2f} grey levels from the truth"
    if audio:
        assert packets(out, "audio") == packets(src, "audio")


def test_a_gap_longer_than_max_run_is_held_and_reported(tmp_path, blend):
    src, out = tmp_path / "long.mkv", tmp_path / "held.mkv"
    deleted = [8] + list(range(20, 25))  # one frame, then five: more than max_run 3
    gappy_clip(src, deleted, time_base=Fraction(1, 1000), audio=False)
    result = fix_drops(src, out, encode=FFV1, interpolator=blend)
    assert [(g.index, g.missing, g.action) for g in result.plan.gaps] == [(8, 1, "interpolate"),
                                                                            (19, 5, "keep-hold")]
    b = video_facts(out)
    assert b["n"] == N and b["times"] == [Fraction(i, RATE) for i in range(N)]
    for i in range(20, 25):  # frame 19 held through the gap
        assert all(np.array_equal(x, y) for x, y in zip(b["planes"][i], b["planes"][19]))
    assert result.synthesized == 1


def test_repeats_right_before_and_right_after_a_gap_are_found_and_repaired_evenly(tmp_path, blend):
    # the source drops frame 20 and, just before, repeats 18 as 19; it drops 26 and shows 25 again as 27
    truth = fade()
    pictures = {i: truth[i] for i in range(N) if i not in (20, 26)}
    pictures[19], pictures[27] = truth[18], truth[25]
    kept = sorted(pictures)
    src, out = tmp_path / "both.mkv", tmp_path / "fixed.mkv"
    write_clip(src, [pictures[i] for i in kept], pts=[40 * i for i in kept], time_base=Fraction(1, 1000))
    result = fix_drops(src, out, encode=FFV1, interpolator=blend)
    a = result.analysis
    assert a.detection.duplicates == [kept.index(19), kept.index(27)]
    assert [(g.index, g.missing) for g in a.timing.gaps] == [(kept.index(21), 1), (kept.index(27), 1)]
    assert {r.action for r in result.plan.runs} == {"interpolate"} and result.synthesized == 4
    b = video_facts(out)
    assert b["n"] == N and b["times"] == [Fraction(i, RATE) for i in range(N)]
    for i in (19, 20, 26, 27):  # each at its own instant between the distinct frames around it
        error = np.abs(b["planes"][i].astype(int) - stored(truth[i]).astype(int)).mean()
        assert error < 1.0, f"frame {i} is {error:.2f} grey levels from the truth"


def test_analysis_reports_gaps_with_times(tmp_path):
    src = tmp_path / "g.mkv"
    gappy_clip(src, [10, 11], time_base=Fraction(1, 1000), audio=False)
    data = analyse(src).to_dict()
    assert data["timing"]["kind"] == "cfr-with-gaps" and data["timing"]["rate"] == "25"
    assert data["gaps"] == [dict(data["timing"]["gaps"][0], action="interpolate")]
    gap = data["gaps"][0]
    assert (gap["frame"], gap["missing"], gap["start"], gap["end"]) == (10, 2, 0.36, 0.48)
    assert data["duration"] == pytest.approx(N / RATE)


def test_upsample_rate_comes_from_the_nominal_rate_not_the_average(tmp_path, blend):
    # the case: a 30 fps capture with one long gap, upsampled by 2, came out at about 12.6 fps
    src, out = tmp_path / "long-gap.mp4", tmp_path / "up.mp4"
    truth = fade()
    kept = [i for i in range(N) if not 5 <= i < 30]
    write_clip(src, [truth[i] for i in kept], rate=30, pts=[i * 512 for i in kept], time_base=Fraction(1, 15360))
    result = upsample(src, out, factor=2, encode=EncodeSettings(preset="ultrafast"), interpolator=blend)
    assert result.analysis.info.frame_rate < 30 and result.out_rate == 60
    facts = video_facts(out)
    assert facts["n"] == 2 * N and set(np.diff(facts["times"])) == {Fraction(1, 60)}
    # the long gap is held (more than max_run intervals), not blended over a second of missing video
    assert [g.action for g in result.analysis.plan.gaps] == ["keep-hold"]
    assert result.synthesized == len(kept) - 2
    assert set(result.plan.frames[10:60]) == {Copy(4)}  # 1/6 s to 1 s: frame 4 held


@pytest.mark.parametrize("fps", ["25", "20", "24000/1001"])
def test_upsample_to_a_rate_at_or_below_the_source_is_a_usage_error(tmp_path, blend, fps):
    src = tmp_path / "g.mkv"
    gappy_clip(src, [10], time_base=Fraction(1, 1000), audio=False)
    with pytest.raises(UsageError, match="above the source"):
        upsample(src, tmp_path / "u.mkv", fps=fps, encode=FFV1, interpolator=blend)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.mkv"]


# --- the command line -----------------------------------------------------------------------------------------


def test_detect_prints_and_reports_gaps(tmp_path):
    import json

    from typer.testing import CliRunner

    import retime.cli as cli

    src = tmp_path / "g.mp4"
    gappy_clip(src, [6, 13, 14], time_base=Fraction(1, 12800), audio=True)
    runner = CliRunner()
    result = runner.invoke(cli.app, ["detect", str(src)])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("37 frames, 96x64, 25 fps, 1.600 s")  # the nominal rate, not the average 23.1
    assert "2 timestamp gap(s), 3 frame(s) missing at a nominal 25 fps" in result.stdout
    rows = [line.split() for line in lines if line.split()[:1] in (["6"], ["12"])]
    assert rows == [["6", "0.200-0.280", "1", "2.00", "interpolate"], ["12", "0.480-0.600", "2", "3.00",
                                                                          "interpolate"]]
    data = json.loads(runner.invoke(cli.app, ["detect", str(src), "--json"]).stdout)
    assert data["timing"]["kind"] == "cfr-with-gaps" and [g["frame"] for g in data["gaps"]] == [6, 12]
    assert data["plan"]["frames_out"] == N and data["cadence"] is None


def test_cli_usage_errors_for_timing(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import retime.cli as cli
    import retime.pipeline as pipeline
    from conftest import BlendInterpolator

    monkeypatch.setattr(pipeline._model, "_default_interpolator", lambda device, model=None: BlendInterpolator)
    src = tmp_path / "g.mkv"
    gappy_clip(src, [10], time_base=Fraction(1, 1000), audio=False)
    runner = CliRunner()
    for args, words in [(["upsample", str(src), str(tmp_path / "u.mkv"), "--fps", "25"], "not above the source"),
                        (["fix-drops", str(src), str(tmp_path / "f.mkv"), "--cadence", "retime"], "no regular")]:
        result = runner.invoke(cli.app, args)
        assert result.exit_code == 2, (args, result.stderr)
        assert len(result.stderr.splitlines()) == 1 and words in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.mkv"]
    assert runner.invoke(cli.app, ["fix-drops", str(src), str(tmp_path / "f.mkv"), "--cadence", "often"]).exit_code == 2
