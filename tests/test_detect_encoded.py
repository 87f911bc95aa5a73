"""Detection through pass 1 on short real clips damaged and re-encoded in the test: repeats in x264's ultrafast
preset (re-coded with fresh noise) and repeats right beside a timestamp gap must all be found and repaired, and
nothing else. Scoring full-resolution luma found 0.58 (carphone) and 0.73 (bikes) of such repeats at these CRFs
(docs/detection.md), so these tests fail if the box-averaged scoring is lost."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from retime.defaults import DEFAULTS
from retime.detect import analysis_block, block_average, detect, frame_difference, previous_frame_vectors
from retime.media.decode import iter_luma
from retime.pipeline import analyse
from retime.plan import Synth
from tests.helpers import clip

av = pytest.importorskip("av")


def decode_yuv(name: str, first: int, count: int) -> tuple[list[np.ndarray], Fraction]:
    """``count`` frames of a PyPI clip from ``first`` on, as yuv420p planes (one (H*3/2, W) array each)."""
    out = []
    with av.open(str(clip(name))) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate)
        for i, frame in enumerate(container.decode(stream)):
            if i >= first + count:
                break
            if i >= first:
                out.append(frame.to_ndarray(format="yuv420p"))
    return out, rate


def encode_x264(path: Path, frames: list[np.ndarray], pts: list[int], rate: Fraction, *, crf: int,
                preset: str, **options: str) -> Path:
    """libx264 in Matroska at the given PTS (in frame intervals: a skipped value is a timestamp gap); ``options``
    go to the encoder too (``x264-params``: ``x264_params``)."""
    height, width = frames[0].shape[0] * 2 // 3, frames[0].shape[1]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.options = {"crf": str(crf), "preset": preset,
                          **{name.replace("_", "-"): value for name, value in options.items()}}
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = 1 / rate
        for p, array in zip(pts, frames):
            frame = av.VideoFrame.from_ndarray(array, format="yuv420p")
            frame.pts, frame.time_base = p, 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def damaged(frames: list[np.ndarray], repeats: list[int], deleted: list[int]):
    """Repeat each frame in ``repeats`` (a copy of the one before), then delete ``deleted`` (their PTS skipped).
    Returns (frames, pts, the repeats' and the gaps' indices after the deletions)."""
    out = list(frames)
    for r in sorted(repeats):
        out[r] = out[r - 1]
    kept = [i for i in range(len(out)) if i not in set(deleted)]
    index = {old: new for new, old in enumerate(kept)}
    return [out[i] for i in kept], kept, sorted(index[r] for r in repeats), sorted(index[d + 1] for d in deleted)


def replaced_and_filled(analysis) -> tuple[list[int], int]:
    """(source frames the plan synthesizes, frames it synthesizes in timestamp gaps)."""
    plan = analysis.plan
    ops = [(plan.position(j), op) for j, op in enumerate(plan.frames)]
    replaced = sorted(int(p) for p, op in ops if isinstance(op, Synth) and p == int(p))
    return replaced, sum(isinstance(op, Synth) for p, op in ops if p != int(p))


@pytest.mark.parametrize("name, first, count, crf", [
    ("carphone_pristine.mp4", 0, 120, 18),  # 176x144, the smallest PyPI clip; full-resolution recall was 0.58
    ("bikes.mp4", 138, 48, 23),  # 640x272 between two cuts, its slowest shot; full-resolution recall was 0.73
])
def test_ultrafast_repeats_and_repeats_beside_gaps_are_all_repaired(tmp_path, name, first, count, crf):
    frames, rate = decode_yuv(name, first, count)
    repeats = [6, 13, 14, 22, 30, 38] + ([50, 60, 61, 72, 84, 97, 105] if count > 100 else [])
    # a gap right after the repeat at 22 (frame 23 deleted) and one before the repeat at 30 (frame 28 deleted)
    frames, pts, truth, gaps = damaged(frames, repeats, deleted=[23, 28])
    src = encode_x264(tmp_path / "ultrafast.mkv", frames, pts, rate, crf=crf, preset="ultrafast")
    a = analyse(src)
    assert [g.index for g in a.timing.gaps] == gaps and all(g.missing == 1 for g in a.timing.gaps)
    assert a.detection.duplicates == truth
    replaced, filled = replaced_and_filled(a)
    assert replaced == truth and filled == 2
    assert a.detection.cuts == []


def test_pass_1_scores_the_box_averaged_picture(tmp_path):
    frames, rate = decode_yuv("bikes.mp4", 31, 6)
    src = encode_x264(tmp_path / "clip.mkv", frames, list(range(6)), rate, crf=18, preset="medium")
    block = analysis_block(640, 272)
    assert block == 4
    grey = []
    with av.open(str(src)) as container:
        grey = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    expected = [frame_difference(block_average(a, block), block_average(b, block)) for a, b in zip(grey, grey[1:])]
    assert analyse(src).scores == pytest.approx(expected)


def test_ultrafast_repeats_in_slow_motion_are_found_by_the_decoders_vectors(tmp_path):
    """bigbuckbunny.mp4's slow stretch (frames 60-131): at CRF 18 a re-coded repeat scores like the slowest real
    frames (0.1-0.25 grey levels against 0.25), and the scores alone miss two of these four repeats. Frames 82 and
    107 repeat in the source (24 -> 25 fps)."""
    first = 60
    frames, rate = decode_yuv("bigbuckbunny.mp4", first, 72)
    frames, pts, truth, _ = damaged(frames, [r - first for r in (80, 85, 88, 117)], deleted=[])
    src = encode_x264(tmp_path / "ultrafast.mkv", frames, pts, rate, crf=18, preset="ultrafast")
    a = analyse(src)
    expected = sorted(set(truth) | {82 - first, 107 - first})
    assert a.vectors is not None and len(a.vectors) == len(a.scores)
    assert a.detection.duplicates == expected
    assert any("motion vectors" in reason for run in a.detection.runs for reason in run.reasons)
    assert set(detect(a.scores, colours=a.colours).duplicates) < set(expected)  # what the scores alone find
    assert replaced_and_filled(a) == (expected, 0)


def test_a_stream_with_b_frames_gives_detection_no_vectors(tmp_path):
    frames, rate = decode_yuv("bikes.mp4", 138, 24)
    src = encode_x264(tmp_path / "medium.mkv", frames, list(range(24)), rate, crf=23, preset="medium")
    decoded = list(iter_luma(src, vectors=True))
    first_b = next(i for i, f in enumerate(decoded) if f.picture_type == "B")
    assert all(f.vectors is None for f in decoded[first_b:])  # not even read after the first B-frame
    a = analyse(src)
    assert a.vectors is None and a.to_dict()["motion_vectors"] is None


def test_motion_vector_share_is_zero_for_a_repeat_and_none_for_an_i_frame(tmp_path):
    frames, rate = decode_yuv("bikes.mp4", 138, 12)
    frames, pts, _, _ = damaged(frames, [6], deleted=[])
    src = encode_x264(tmp_path / "ultrafast.mkv", frames, pts, rate, crf=23, preset="ultrafast")
    decoded = list(iter_luma(src, vectors=True))  # motion_vector_share of each frame, as pass 1 reads it
    shares, types = [f.vectors for f in decoded], [f.picture_type for f in decoded]
    assert types == ["I"] + ["P"] * 11 and shares[0] is None
    real = [s for i, s in enumerate(shares) if i not in (0, 6)]
    assert shares[6] < 0.05 and shares[6] < DEFAULTS.vector_dip * min(real)  # the repeat: from the same place
    assert previous_frame_vectors(types, shares) == pytest.approx(shares[1:])


def test_a_mostly_intra_coded_p_frame_has_no_share(tmp_path):
    """A picture the encoder cannot predict (noise, with x264's scene-cut I-frames off) is coded as a P-frame of
    intra blocks: its few vectors say nothing, so it has no share (and neither has the frame after it)."""
    frames, rate = decode_yuv("bikes.mp4", 138, 10)
    luma_rows = frames[0].shape[0] * 2 // 3
    frames[5] = frames[5].copy()
    frames[5][:luma_rows] = np.random.default_rng(0).integers(0, 256, frames[5][:luma_rows].shape, dtype=np.uint8)
    path = encode_x264(tmp_path / "intra.mkv", frames, list(range(10)), rate, crf=23, preset="ultrafast",
                       x264_params="scenecut=0")
    decoded = list(iter_luma(path, vectors=True))
    assert [f.picture_type for f in decoded] == ["I"] + ["P"] * 9
    assert decoded[5].vectors is None and decoded[6].vectors is None
    assert all(0 < f.vectors < 1 for i, f in enumerate(decoded) if i not in (0, 5, 6))
