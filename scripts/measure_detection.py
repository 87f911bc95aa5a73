"""Measure retime's duplicate detection on the real PyPI clips, as EVAL.md section 2 prescribes.

What it does, per clip in assets/clips/ (bigbuckbunny.mp4, bikes.mp4, carphone_pristine.mp4):

1. Original file: the scores (mean absolute grey-level difference of consecutive frames) around the known real
   duplicates and the smallest scores that are not duplicates; what ``detect`` finds (bigbuckbunny.mp4 has real
   duplicates from a 24 -> 25 fps conversion at frames 7, 32, 57, 82 and 107, and must give exactly those).
2. Damage: at seeded random positions (about 5% of the frames, runs of 1, 2 or 3) a frame is replaced with a copy
   of the frame before it; plus an intentional freeze (one frame held for FREEZE_LEN frames) and a drop right
   before and right after each scene cut of the original. The damaged video is encoded losslessly (FFV1 in
   Matroska) and with libx264 at CRF 18, 23 and 30, at the medium and at the ultrafast preset, decoded to grey,
   scored, detected and planned with ``plan_fix_drops``. Precision and recall count the frames the plan
   *replaces* (synthesizes) against the damaged positions (plus the known real duplicates); the freeze must be
   kept and a drop right before a cut must not be blended across it (both reported, not counted as misses).
3. Hard case: a slow, nearly static shot (a sub-pixel pan of a real frame, true motion about 0.3 grey levels per
   frame) encoded the same ways; retime must repair nothing in it.
4. Timestamp gaps: every third random single repeat gets a gap beside it (a frame deleted, its PTS skipped); the
   cases are detected and planned as pass 1 does, so the repeat must be replaced and the gap filled.

Every case is scored at each of BLOCKS (grey frames box-averaged as pass 1 does, ``block_average``); ``--block``
picks the one reported (``auto``: pass 1's own choice), ``--blocks`` compares them. ``--held-out`` runs the same on
clips made for confirming, which took no part in any choice (``held_out_clips``).

``--sweep`` evaluates a grid of detection settings on the same scores and prints the best, which is how the
defaults in retime/defaults.py were chosen (docs/detection.md). Runtime for three seeds: 4-5 minutes of wall time
on two shared cores (the 1280x720 clip's seven encodes per seed dominate); the held-out clips about 5 minutes.
``--cache FILE`` keeps the scores, so that a second run (``--sweep``, other settings) skips the encoding.

Usage:
    .venv/bin/python scripts/measure_detection.py [--seeds 2] [--first-seed 0] [--block auto|N] [--blocks]
        [--held-out] [--sweep]
        [--cache FILE] [--threshold X --floor X --dip-ratio X --deep-ratio X --window N --min-motion X]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import pickle
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.video.frame import PictureType
import numpy as np
from scipy import ndimage  # installed with scikit-image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from retime.detect import (DetectionSettings, NeighbourGram, analysis_block, block_average,  # noqa: E402
                           colour_change, colour_histogram, detect, difference_scores, previous_frame_vectors)
from retime.media.decode import motion_vector_share  # noqa: E402
from retime.pipeline._analysis import THUMBNAIL  # noqa: E402
from retime.plan import KEEP_CUT, KEEP_FREEZE, Synth, plan_fix_drops  # noqa: E402
from retime.timing import Gap, analyse_timing  # noqa: E402

CLIPS = ROOT / "assets" / "clips"
#: Real duplicates known to be in the original files (frame indices): ground truth, not tuning.
KNOWN_DUPLICATES = {"bigbuckbunny.mp4": [7, 32, 57, 82, 107], "bikes.mp4": [], "carphone_pristine.mp4": []}
DAMAGE_FRACTION = 0.05
RUN_LENGTHS, RUN_WEIGHTS = (1, 2, 3), (0.6, 0.25, 0.15)
FREEZE_LEN = 10  # frames held in the intentional freeze; > max_run
PAN_FRAMES = 40
PAN_MOTION = 0.3  # grey levels per frame, the target true motion of the slow pan
#: "ffv1" is lossless; "crfNN" is libx264 at the medium preset (retime's and FFmpeg's default); "fast-crfNN" is
#: libx264 at the ultrafast preset (screen and game capture), whose duplicates score several times higher.
ENCODINGS = ("ffv1", "crf18", "crf23", "crf30", "fast-crf18", "fast-crf23", "fast-crf30")
#: Block sizes every decoded video is scored at (one encode, every block size: the encodes dominate the runtime).
BLOCKS = (1, 2, 3, 4, 6, 8)
#: Every GAP_EVERY-th random single drop gets a timestamp gap beside it (a frame deleted, its PTS skipped), after
#: the repeat and before it in turn: the repeat and the gap must both be repaired.
GAP_EVERY = 3
#: Give detect the decoder's motion vectors where pass 1 would (streams without B-frames); --no-vectors: "before"
USE_VECTORS = True
POSITIONS = "all"  # see gram_for


@dataclass
class Case:
    """One decoded, scored video and what a correct detector should do with it."""

    clip: str
    encoding: str
    seed: int | None  # None: the original file or the pan
    kind: str  # "original", "damaged" or "pan"
    by_block: dict[int, list[float]]  # the scores of the grey frames box-averaged by each of BLOCKS
    truth: set[int]  # frames that should be replaced
    freeze: range | None = None  # frames of the intentional freeze
    at_cut: tuple[int, ...] = ()  # drops right before a cut: must stay copies
    colours: list[float] | None = None  # colour change of each pair, as pass 1 measures it (None: not measured)
    size: tuple[int, int] = (0, 0)  # width, height
    pts: list[int] | None = None  # decoded timestamps (in frame intervals); None: no gap
    gap_adjacent: tuple[int, ...] = ()  # repeats with a timestamp gap beside them (also in truth)
    scores: list[float] | None = None  # the scores at the block size being evaluated (see select)
    #: motion_vector_share of frames 1..n-1 (NaN where a frame has none), as pass 1 gives detect: None for a
    #: stream with B-frames (the vectors of one are not against the frame before)
    vectors: list[float] | None = None
    #: (n, R + 1) int64: <B_t, B_t+k> of the frames box-averaged as pass 1 does (0 past the end), for
    #: position cues measured after the encodes (docs/detection.md, "Four more cues": the position τ)
    gram: np.ndarray | None = None

    @property
    def gaps(self) -> list[Gap]:
        if self.pts is None:
            return []
        return list(analyse_timing(self.pts, Fraction(1)).gaps)


# --- video in and out -----------------------------------------------------------------------------------------


def decode(path: Path, colours: list[float] | None = None, pts: list[int] | None = None,
           vectors: list[float | None] | None = None) -> tuple[list[np.ndarray], list[np.ndarray], Fraction]:
    """(yuv420p planes as one (H*3/2, W) array per frame, grey (H, W) frames, average frame rate); appends the
    colour change of each consecutive pair to ``colours`` when given (thumbnails as pass 1 makes them), each
    frame's PTS in frame intervals to ``pts``, and to ``vectors`` each frame's (picture type,
    motion_vector_share)."""
    yuv, grey = [], []
    previous = None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if vectors is not None:
            stream.codec_context.options = {"export_side_data": "mvs"}
        rate = Fraction(stream.average_rate or stream.guessed_rate)
        for frame in container.decode(stream):
            if vectors is not None:
                vectors.append((PictureType(frame.pict_type).name, motion_vector_share(frame)))
            if pts is not None:
                pts.append(round(frame.pts * stream.time_base * rate))
            yuv.append(frame.to_ndarray(format="yuv420p"))
            grey.append(frame.to_ndarray(format="gray"))
            if colours is not None:
                scale = THUMBNAIL / max(frame.width, frame.height)
                thumb = frame.reformat(width=max(1, round(frame.width * scale)),
                                       height=max(1, round(frame.height * scale)), format="rgb24",
                                       interpolation="AREA").to_ndarray()
                histogram = colour_histogram(thumb)
                if previous is not None:
                    colours.append(colour_change(previous, histogram))
                previous = histogram
    return yuv, grey, rate


def encode(frames: list[np.ndarray], rate: Fraction, path: Path, encoding: str,
           pts: list[int] | None = None) -> None:
    """Encode yuv420p frames into Matroska: ``ffv1`` (lossless), ``crfNN`` (libx264 medium) or ``fast-crfNN``
    (libx264 ultrafast); ``pts`` in frame intervals (default 0, 1, 2, ...; a skipped value is a gap)."""
    height, width = frames[0].shape[0] * 2 // 3, frames[0].shape[1]
    with av.open(str(path), "w") as container:
        if encoding == "ffv1":
            stream = container.add_stream("ffv1", rate=rate)
        else:
            stream = container.add_stream("libx264", rate=rate)
            preset = "ultrafast" if encoding.startswith("fast-") else "medium"
            stream.options = {"crf": encoding.removeprefix("fast-").removeprefix("crf"), "preset": preset}
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = 1 / rate
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="yuv420p")
            frame.pts, frame.time_base = (i if pts is None else pts[i]), 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def scores_by_block(grey: list[np.ndarray]) -> dict[int, list[float]]:
    """The scores of consecutive grey frames box-averaged (``block_average``, as pass 1 does) by each of BLOCKS."""
    return {b: difference_scores([block_average(g, b) for g in grey]) for b in BLOCKS
            if min(grey[0].shape) >= 16 * b}


def neighbour_gram(grey: list[np.ndarray]) -> np.ndarray:
    """``(n, GRAM_REACH + 1)`` int64 products <B_t, B_t+k> (exact) of the grey frames box-averaged by pass 1's
    block for their size, as pass 1 computes them."""
    block = analysis_block(grey[0].shape[1], grey[0].shape[0])
    gram = NeighbourGram()
    for g in grey:
        gram.add(block_average(g, block))
    return gram.array()


def roundtrip_scores(frames: list[np.ndarray], rate: Fraction, encoding: str, tmp: Path,
                     pts: list[int] | None = None
                     ) -> tuple[dict[int, list[float]], list[float], list[int], list[float] | None, np.ndarray]:
    """(grey scores by block size, colour changes, decoded PTS, the vectors pass 1 gives detect,
    :func:`neighbour_gram`) of the frames after encoding them with ``encoding`` and decoding."""
    path = tmp / "v.mkv"  # Matroska keeps the PTS as given; MP4 moved some after a gap (B-frame DTS)
    encode(frames, rate, path, encoding, pts)
    colours: list[float] = []
    decoded_pts: list[int] = []
    vectors: list = []
    _, grey, _ = decode(path, colours, decoded_pts, vectors)
    if len(grey) != len(frames):
        raise RuntimeError(f"{encoding}: {len(frames)} frames in, {len(grey)} decoded")
    return (scores_by_block(grey), colours, decoded_pts, previous_frame_vectors(*zip(*vectors)),
            neighbour_gram(grey))


# --- damage ---------------------------------------------------------------------------------------------------


def damage(n: int, rng: np.random.Generator, reserved: set[int], cuts: list[int]):
    """Choose damaged positions: drops at cuts, a freeze, then random runs; runs never touch each other."""
    taken = set()

    def free(lo: int, hi: int) -> bool:  # frames lo..hi and a gap of 2 around them are untouched
        return lo >= 1 and hi <= n - 2 and not any(f in taken or f in reserved for f in range(lo - 2, hi + 3))

    at_cut, after_cut = [], []
    for c in cuts:  # a cut between c - 1 and c: drop c - 1 (just before it) and c + 1 (just after it)
        if free(c - 1, c - 1):
            at_cut.append(c - 1)
            taken.add(c - 1)
        if free(c + 1, c + 1):
            after_cut.append(c + 1)
            taken.add(c + 1)
    freeze = None
    for _ in range(1000):
        start = int(rng.integers(1, n - FREEZE_LEN - 1))
        if free(start, start + FREEZE_LEN - 1):
            freeze = range(start, start + FREEZE_LEN)
            taken.update(freeze)
            break
    random_drops = []
    target = round(DAMAGE_FRACTION * n)
    for _ in range(10000):
        if len(random_drops) >= target:
            break
        k = int(rng.choice(RUN_LENGTHS, p=RUN_WEIGHTS))
        start = int(rng.integers(1, n - k))
        if free(start, start + k - 1):
            run = range(start, start + k)
            random_drops.extend(run)
            taken.update(run)
    # timestamp gaps beside some single repeats p: frame p + 1 deleted (the gap after the repeat), or frame p - 2
    # (before the frame p - 1 that it repeats); free() left both untouched
    singles = [p for p in random_drops if p - 1 not in random_drops and p + 1 not in random_drops]
    deleted = []
    for m, p in enumerate(singles[::GAP_EVERY]):
        deleted.append(p + 1 if m % 2 == 0 else p - 2)
    taken.update(deleted)
    return sorted(random_drops + after_cut), at_cut, freeze, sorted(deleted)


def apply_damage(frames: list[np.ndarray], positions) -> list[np.ndarray]:
    out = list(frames)
    for p in sorted(positions):
        out[p] = out[p - 1]
    return out


def slow_pan(yuv: np.ndarray) -> list[np.ndarray]:
    """A sub-pixel horizontal pan of a real frame's luma (chroma held), about PAN_MOTION grey levels per frame.

    Cubic-spline shifts keep the sharpness the same in every frame (a linear-interpolation shift blurs the
    half-pixel positions more than the whole-pixel ones, which makes the scores pulse).
    """
    h = yuv.shape[0] * 2 // 3
    luma = yuv[:h].astype(np.float32)
    gradient = float(np.abs(np.diff(luma, axis=1)).mean())
    speed = PAN_MOTION / max(gradient, 1e-3)  # pixels per frame: score ~ speed x mean |d luma / dx|
    coefficients = ndimage.spline_filter(luma, order=3, mode="nearest")
    frames = []
    for t in range(PAN_FRAMES):
        shifted = ndimage.shift(coefficients, (0, speed * t), order=3, mode="nearest", prefilter=False)
        frame = yuv.copy()
        frame[:h] = np.clip(shifted + 0.5, 0, 255).astype(np.uint8)
        frames.append(frame)
    return frames


# --- evaluation -----------------------------------------------------------------------------------------------


@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    freeze_kept: int = 0
    freezes: int = 0
    cut_kept: int = 0
    cut_drops: int = 0
    pan_false: int = 0
    gap_frames: int = 0  # frames missing at timestamp gaps
    gap_filled: int = 0  # of them, interpolated
    adjacent: int = 0  # repeats with a gap beside them
    adjacent_found: int = 0  # of them, replaced

    def add(self, other: Tally) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def gram_for(case: Case) -> np.ndarray | None:
    """The inner products detect gets for this case (``POSITIONS``): ``"all"`` always, as pass 1 gives them;
    ``"auto"`` only where the stream has no motion vectors detect may use; ``"off"`` never; none off pass 1's
    block."""
    if POSITIONS == "off" or case.gram is None or case.scores is not case.by_block.get(analysis_block(*case.size)):
        return None
    if POSITIONS == "auto" and USE_VECTORS and case.vectors is not None:
        return None
    return case.gram


def evaluate(case: Case, settings: DetectionSettings) -> Tally:
    """Detect and plan as pass 1 does (spans across timestamp gaps, the gaps in the plan), then count."""
    gaps = case.gaps
    spans = [1] * len(case.scores)
    for gap in gaps:
        spans[gap.index - 1] = gap.missing + 1
    detection = detect(case.scores, settings, colours=case.colours, spans=spans,
                       vectors=case.vectors if USE_VECTORS else None, gram=gram_for(case))
    plan = plan_fix_drops(len(case.scores) + 1, detection, gaps)
    positions = plan.positions or range(len(plan.frames))
    replaced = {int(p) for p, op in zip(positions, plan.frames) if isinstance(op, Synth) and p == int(p)}
    filled = sum(isinstance(op, Synth) for p, op in zip(positions, plan.frames) if p != int(p))
    tally = Tally(gap_frames=sum(g.missing for g in gaps), gap_filled=filled,
                  adjacent=len(case.gap_adjacent), adjacent_found=len(replaced & set(case.gap_adjacent)))
    if case.kind == "pan":
        tally.pan_false = len(replaced)
        return tally
    tally.tp = len(replaced & case.truth)
    tally.fp = len(replaced - case.truth - set(case.freeze or ()) - set(case.at_cut))
    tally.fn = len(case.truth - replaced)
    def action_at(frame: int) -> str | None:  # the action of the run that holds this frame
        return next((r.action for r in plan.runs if r.start <= frame < r.start + r.length), None)

    if case.freeze is not None:
        tally.freezes = 1
        tally.freeze_kept = int(all(action_at(f) == KEEP_FREEZE for f in case.freeze))
    for p in case.at_cut:  # a duplicate just before a cut must not be blended across it: detected or not, a copy
        tally.cut_drops += 1
        tally.cut_kept += int(p not in replaced and action_at(p) in (KEEP_CUT, None))
    return tally


def rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB to yuv420p planes as one (H*3/2, W) array (swscale, as an encoder's input would be)."""
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray()


def held_out_clips() -> list[tuple[str, list[np.ndarray], Fraction]]:
    """Clips that took no part in choosing the settings: (name, yuv420p frames, rate).

    - ``camera-middlebury``: a virtual camera (retime_bench.camera) panning and zooming over Middlebury Urban2,
      then, after a cut, over Beanbags (400x300, 2 x 60 frames);
    - ``camera-bbb``: the camera zooming into bigbuckbunny.mp4's frame 60 while panning (768x432, 90 frames);
    - ``carphone-loop-WxH``: carphone_pristine.mp4 played forwards then backwards, resized (bicubic) to 352x288
      and 640x480.
    """
    from PIL import Image

    from retime_bench.camera import VirtualCamera

    data = ROOT.parent / "shared" / "data" / "middlebury-other"
    if not data.is_dir():
        data = Path("/work/shared/data/middlebury-other")
    rate = Fraction(25)
    clips = []
    shots = []
    for name, velocity, zoom in (("Urban2", (2.0 * 25, 0.6 * 25), 0.08), ("Beanbags", (-1.5 * 25, 0.8 * 25), -0.05)):
        image = np.asarray(Image.open(data / name / "frame10.png").convert("RGB"))
        start = (20.0, 20.0) if velocity[0] > 0 else (image.shape[1] - 420.0 - 20, 20.0)
        camera = VirtualCamera(image, 400, 300, start, velocity, zoom)
        shots += [rgb_to_yuv(camera.frame(Fraction(t) / rate)) for t in range(60)]
    clips.append(("camera-middlebury", shots, rate))
    with av.open(str(CLIPS / "bigbuckbunny.mp4")) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == 60:
                picture = frame.to_ndarray(format="rgb24")
                break
    camera = VirtualCamera(picture, 768, 432, (100.0, 60.0), (1.2 * 25, 0.5 * 25), 0.1)
    clips.append(("camera-bbb", [rgb_to_yuv(camera.frame(Fraction(t) / rate)) for t in range(90)], rate))
    with av.open(str(CLIPS / "carphone_pristine.mp4")) as container:
        stream = container.streams.video[0]
        carphone_rate = Fraction(stream.average_rate)
        source = list(container.decode(stream))
        for width, height in ((352, 288), (640, 480)):
            frames = [f.reformat(width=width, height=height, format="yuv420p", interpolation="BICUBIC").to_ndarray()
                      for f in source]
            clips.append((f"carphone-loop-{width}x{height}", frames + frames[-2::-1], carphone_rate))
    return clips


def build_cases(seeds: range, held_out: bool = False) -> list[Case]:
    """Score every case at every block size: the original files (or the held-out clips), their damaged copies in
    every encoding, and a slow pan of each."""
    cases = []
    if held_out:
        sources = [(name, frames, rate, []) for name, frames, rate in held_out_clips()]
    else:
        sources = []
        for clip, known in KNOWN_DUPLICATES.items():
            yuv, _, rate = decode(CLIPS / clip)
            sources.append((clip, yuv, rate, known))
    with tempfile.TemporaryDirectory(prefix="retime-measure-") as tmpdir:
        tmp = Path(tmpdir)
        for clip, yuv, rate, known in sources:
            t0 = time.time()
            height, width = yuv[0].shape[0] * 2 // 3, yuv[0].shape[1]
            size = (width, height)
            if held_out:  # the clip as made, losslessly: nothing to replace, its cuts to find
                original, colours, _, _, gram = roundtrip_scores(yuv, rate, "ffv1", tmp)
            else:
                colours = []
                _, grey, _ = decode(CLIPS / clip, colours)
                original, gram = scores_by_block(grey), neighbour_gram(grey)
            cases.append(Case(clip, "original", None, "original", original, set(known), colours=colours, size=size,
                              gram=gram))
            cuts = detect(original[1], colours=colours).cuts  # cuts of the original, to place drops at them
            for seed in seeds:
                rng = np.random.default_rng([seed, len(yuv)])
                drops, at_cut, freeze, deleted = damage(len(yuv), rng, set(known), cuts)
                damaged = apply_damage(yuv, drops + at_cut + list(freeze or ()))
                kept = [i for i in range(len(yuv)) if i not in set(deleted)]
                index = {old: new for new, old in enumerate(kept)}  # frame numbers after the deletions
                adjacent = [p for d in deleted for p in (d - 1, d + 2) if p in drops]
                for encoding in ENCODINGS:
                    scored, changes, pts, vectors, gram = roundtrip_scores([damaged[i] for i in kept], rate,
                                                                           encoding, tmp, kept)
                    cases.append(Case(clip, encoding, seed, "damaged", scored,
                                      {index[p] for p in set(drops) | set(known)},
                                      range(index[freeze.start], index[freeze.stop - 1] + 1) if freeze else None,
                                      tuple(index[p] for p in at_cut), changes, size, pts,
                                      tuple(index[p] for p in adjacent), vectors=vectors, gram=gram))
            pan = slow_pan(yuv[len(yuv) // 2])
            for encoding in ENCODINGS:
                scored, changes, _, vectors, gram = roundtrip_scores(pan, rate, encoding, tmp)
                cases.append(Case(clip, encoding, None, "pan", scored, set(), colours=changes, size=size,
                                  vectors=vectors, gram=gram))
            print(f"# {clip}: {len(yuv)} frames {width}x{height} @ {rate} fps, "
                  f"encoded and scored in {time.time() - t0:.1f} s", file=sys.stderr)
    return cases


def select(cases: list[Case], block: str) -> list[Case]:
    """Set each case's ``scores`` to those at ``block``: a number (every clip), or ``auto`` (what pass 1 uses,
    ``analysis_block`` of the clip's size)."""
    for case in cases:
        b = analysis_block(*case.size) if block == "auto" else int(block)
        case.scores = case.by_block[b] if b in case.by_block else case.by_block[max(case.by_block)]
    return cases


# --- reports --------------------------------------------------------------------------------------------------


def report_originals(cases: list[Case], settings: DetectionSettings) -> None:
    print("## Original files\n")
    for case in (c for c in cases if c.kind == "original"):
        s = np.asarray(case.scores)
        detection = detect(case.scores, settings, colours=case.colours, gram=gram_for(case))
        exact = "exact" if detection.duplicates == sorted(case.truth) else "NOT EXACT"
        print(f"{case.clip}: {len(s) + 1} frames; detected duplicates {detection.duplicates} "
              f"(known {sorted(case.truth)}: {exact}); cuts {detection.cuts}")
        for d in sorted(case.truth):
            span = range(max(0, d - 3), min(len(s), d + 2))  # score i: frame i + 1 against frame i
            around = ", ".join(f"{s[i]:.3f}" + ("*" if i == d - 1 else "") for i in span)
            print(f"  duplicate {d}: scores of frames {span[0] + 1}..{span[-1] + 1} vs the frame before: {around}")
        nondup = [(v, i + 1) for i, v in enumerate(s) if i + 1 not in case.truth]
        smallest = ", ".join(f"frame {f}: {v:.3f}" for v, f in sorted(nondup)[:5])
        print(f"  smallest non-duplicate scores: {smallest}")
    print()


def report_gap(cases: list[Case]) -> None:
    print("## Score gap after encoding (damaged videos, all seeds)\n")
    print("| clip | encoding | duplicate scores (min-max) | smallest non-duplicate | median non-duplicate |")
    print("|---|---|---|---|---|")
    for (clip, encoding), group in itertools.groupby(
            sorted((c for c in cases if c.kind == "damaged"), key=lambda c: (c.clip, ENCODINGS.index(c.encoding))),
            key=lambda c: (c.clip, c.encoding)):
        dup, other = [], []
        for case in group:
            skip = set(case.freeze or ()) | set(case.at_cut)
            for i, v in enumerate(case.scores):
                if i + 1 in case.truth:
                    dup.append(v)
                elif i + 1 not in skip:
                    other.append(v)
        print(f"| {clip} | {encoding} | {min(dup):.3f}-{max(dup):.3f} | {min(other):.3f} | {np.median(other):.3f} |")
    pans = [c for c in cases if c.kind == "pan"]
    print("\nslow pan (true motion target %.1f): " % PAN_MOTION
          + "; ".join(f"{c.clip} {c.encoding} {min(c.scores):.3f}-{max(c.scores):.3f}" for c in pans))
    print()


def report_table(cases: list[Case], settings: DetectionSettings) -> None:
    print("## Precision and recall of the replaced frames\n")
    print(f"settings: {settings.to_dict()}\n")
    print("| clip | encoding | damaged frames | precision | recall | freezes kept | drops at a cut kept "
          "| slow pan: frames wrongly repaired | repeats beside a gap found | gap frames filled |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    totals: dict[str, Tally] = {}
    for clip in clips_of(cases):
        original = next(c for c in cases if c.kind == "original" and c.clip == clip)
        t = evaluate(original, settings)
        print(f"| {clip} | original file | {len(original.truth)} (real) | {t.precision:.3f} | {t.recall:.3f} "
              f"| - | - | - | - | - |")
        for encoding in ENCODINGS:
            tally = Tally()
            for case in cases:
                if case.clip == clip and case.encoding == encoding and case.kind in ("damaged", "pan"):
                    tally.add(evaluate(case, settings))
            totals.setdefault(encoding, Tally()).add(tally)
            print(f"| {clip} | {encoding} | {tally.tp + tally.fn} | {tally.precision:.3f} | {tally.recall:.3f} "
                  f"| {tally.freeze_kept}/{tally.freezes} | {tally.cut_kept}/{tally.cut_drops} | {tally.pan_false} "
                  f"| {tally.adjacent_found}/{tally.adjacent} | {tally.gap_filled}/{tally.gap_frames} |")
    for encoding, t in totals.items():
        print(f"| all | {encoding} | {t.tp + t.fn} | {t.precision:.3f} | {t.recall:.3f} | {t.freeze_kept}/{t.freezes} "
              f"| {t.cut_kept}/{t.cut_drops} | {t.pan_false} | {t.adjacent_found}/{t.adjacent} "
              f"| {t.gap_filled}/{t.gap_frames} |")
    print()


def clips_of(cases: list[Case]) -> list[str]:
    return list(dict.fromkeys(c.clip for c in cases))


def report_blocks(cases: list[Case], settings: DetectionSettings) -> None:
    """Per clip and block size: precision/recall per encoding, and the hard failures (see :func:`sweep`)."""
    print("## Block sizes: precision/recall per encoding, hard failures (lossless and medium, then ultrafast)\n")
    print("| clip | block | scored size | " + " | ".join(ENCODINGS) + " | hard failures | ultrafast failures |")
    print("|---|---|---|" + "---|" * (len(ENCODINGS) + 2))
    for clip in clips_of(cases):
        mine = [c for c in cases if c.clip == clip]
        width, height = mine[0].size
        for block in sorted(mine[0].by_block):
            select(mine, str(block))
            cells, hard, fast_hard = [], 0, 0
            for encoding in ENCODINGS:
                tally = Tally()
                for case in mine:
                    if case.encoding == encoding and case.kind in ("damaged", "pan"):
                        tally.add(evaluate(case, settings))
                cells.append(f"{tally.precision:.2f}/{tally.recall:.2f}")
                fails = (tally.freezes - tally.freeze_kept) + (tally.cut_drops - tally.cut_kept) + tally.pan_false
                if encoding.startswith("fast-"):
                    fast_hard += fails
                else:
                    hard += fails
            original = evaluate(next(c for c in mine if c.kind == "original"), settings)
            hard += original.fp + original.fn
            print(f"| {clip} | {block} | {width // block}x{height // block} | " + " | ".join(cells)
                  + f" | {hard} | {fast_hard} |")
    print()


#: The grid that --sweep searches (the other settings stay at their defaults).
SWEEP_GRID = dict(threshold=[0.3, 0.4, 0.5, 0.6, 0.8], dip_ratio=[0.3, 0.35, 0.4, 0.45],
                  deep_ratio=[0.0, 0.05, 0.1, 0.15, 0.2], window=[4, 6, 8], min_motion=[0.3, 0.4, 0.5, 0.7])
#: The cells a setting is ranked on (issue 14's target: CRF 18 and 23 at both presets, and lossless); CRF 30 is
#: reported beside.
TARGET = ("ffv1", "crf18", "crf23", "fast-crf18", "fast-crf23")


def sweep(cases: list[Case], top: int = 25) -> None:
    """Grid search over SWEEP_GRID. Hard failures are counted on the lossless and medium-preset encodings: a wrong
    frame on an original file (whose real duplicates are known), a freeze not kept whole, a drop at a cut blended
    across it, a frame repaired in a slow pan. Ranked by fewest hard failures, then the worst F1 over the (clip,
    encoding) cells of TARGET, then their mean F1: a setting must work everywhere, not win on average."""
    rows = []
    cells = sorted({(c.clip, c.encoding) for c in cases if c.kind == "damaged"})
    for values in itertools.product(*SWEEP_GRID.values()):
        settings = DetectionSettings(**dict(zip(SWEEP_GRID, values)))
        failures, f1s, crf30 = 0, [], []
        for clip, encoding in cells:
            tally = Tally()
            for case in cases:
                if case.clip == clip and case.encoding == encoding and case.kind in ("damaged", "pan"):
                    tally.add(evaluate(case, settings))
            p, r = tally.precision, tally.recall
            f1 = 2 * p * r / (p + r) if p + r else 0.0
            (f1s if encoding in TARGET else crf30).append(f1)
            if not encoding.startswith("fast-"):
                failures += (tally.freezes - tally.freeze_kept) + (tally.cut_drops - tally.cut_kept) + tally.pan_false
        for case in cases:
            if case.kind == "original":
                t = evaluate(case, settings)
                failures += t.fp + t.fn
        rows.append((failures, min(f1s), float(np.mean(f1s)), float(np.mean(crf30)), dict(zip(SWEEP_GRID, values))))
    rows.sort(key=lambda r: (-r[0], r[1], r[2]), reverse=True)
    print(f"## Sweep: {len(rows)} settings, {sum(r[0] == 0 for r in rows)} without a hard failure\n")
    print("| hard failures | worst F1 (lossless, CRF 18/23 both presets) | mean F1 | mean F1, CRF 30 | settings |")
    print("|---|---|---|---|---|")
    for failures, worst, mean, rest, values in rows[:top]:
        print(f"| {failures} | {worst:.3f} | {mean:.3f} | {rest:.3f} | {values} |")
    print()


TUNABLE = ("threshold", "floor", "dip_ratio", "deep_ratio", "window", "min_motion", "vector_dip", "position_cut",
           "vector_position_cut")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2, help="damage patterns per clip (default 2)")
    parser.add_argument("--first-seed", type=int, default=0, help="seed of the first damage pattern (default 0)")
    parser.add_argument("--block", default="auto", help="score grey frames box-averaged in blocks of this many "
                        "pixels a side, or 'auto' (pass 1's choice for each clip's size; the default)")
    parser.add_argument("--blocks", action="store_true", help="also report every block size for every clip")
    parser.add_argument("--held-out", action="store_true", help="the clips made for confirming, not the PyPI clips")
    parser.add_argument("--sweep", action="store_true", help="also grid-search the detection settings")
    for name in TUNABLE:
        parser.add_argument(f"--{name.replace('_', '-')}", type=int if name == "window" else float,
                            help=f"override the default {name}")
    parser.add_argument("--no-vectors", action="store_true", help="detect on the scores alone, as before the "
                        "motion-vector rule (the decoder's vectors are still read and cached)")
    parser.add_argument("--positions", choices=("all", "auto", "off"), default="all", help="give detect the "
                        "frames' inner products (the position test): always, as pass 1 does (all, the default), "
                        "only where the stream has no usable vectors (auto), or never (off)")
    parser.add_argument("--cache", type=Path, nargs="+", help="pickle of the scored cases: reused when present, "
                        "else written; several (all present) are pooled into one table, which is how case sets of "
                        "different seeds are read together")
    args = parser.parse_args()
    overrides = {k: getattr(args, k) for k in TUNABLE
                 if getattr(args, k) is not None}
    settings = DetectionSettings(**overrides)
    global USE_VECTORS, POSITIONS
    USE_VECTORS = not args.no_vectors
    POSITIONS = args.positions
    t0 = time.time()
    caches = args.cache or []
    if len(caches) > 1 and not all(c.exists() for c in caches):
        parser.error("several --cache files are pooled, so each must exist: "
                     + ", ".join(str(c) for c in caches if not c.exists()))
    if caches and caches[0].exists():
        cases, seen = [], set()
        for case in (case for cache in caches for case in pickle.loads(cache.read_bytes())):
            key = (case.clip, case.encoding, case.kind, case.seed)
            if case.seed is None and key in seen:  # the originals and the pan are in every cache: count them once
                continue
            seen.add(key)
            cases.append(case)
        if not any(getattr(c, "vectors", None) is not None for c in cases) and not args.no_vectors:
            print(f"# warning: {' '.join(map(str, caches))} hold no motion vectors (written before they were read, "
                  f"or no stream without B-frames): this measures the scores alone", file=sys.stderr)
        seeds = ", ".join(map(str, sorted({c.seed for c in cases if getattr(c, "seed", None) is not None})))
        where = f"{len(caches)} cache(s) pooled, seeds {seeds or 'as cached'}"
    else:
        cases = build_cases(range(args.first_seed, args.first_seed + args.seeds), args.held_out)
        if caches:
            caches[0].write_bytes(pickle.dumps(cases))
        where = f"seeds {args.first_seed}..{args.first_seed + args.seeds - 1}"
    print(f"# measure_detection: {where}, block {args.block}{', held-out clips' if args.held_out else ''}\n")
    if args.blocks:
        report_blocks(cases, settings)
    select(cases, args.block)
    report_originals(cases, settings)
    report_gap(cases)
    report_table(cases, settings)
    if args.sweep:
        sweep(cases)
    print(f"# done in {time.time() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
