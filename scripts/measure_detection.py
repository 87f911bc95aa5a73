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

``--sweep`` evaluates a grid of detection settings on the same scores and prints the best, which is how the
defaults in retime/defaults.py were chosen (docs/detection.md). Runtime for the default two seeds: about 1.5 CPU
minutes, 2-3.5 minutes of wall time on two shared cores (the 1280x720 clip's seven encodes per seed dominate).
``--cache FILE`` keeps the scores, so that a second run (``--sweep``, other settings) skips the encoding.

Usage:
    .venv/bin/python scripts/measure_detection.py [--seeds 2] [--first-seed 0] [--downscale 1] [--sweep]
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
import numpy as np
from scipy import ndimage  # installed with scikit-image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from retime.detect import DetectionSettings, colour_change, colour_histogram, detect, difference_scores  # noqa: E402
from retime.pipeline._analysis import THUMBNAIL  # noqa: E402
from retime.plan import KEEP_CUT, KEEP_FREEZE, Synth, plan_fix_drops  # noqa: E402

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


@dataclass
class Case:
    """One decoded, scored video and what a correct detector should do with it."""

    clip: str
    encoding: str
    seed: int | None  # None: the original file or the pan
    kind: str  # "original", "damaged" or "pan"
    scores: list[float]
    truth: set[int]  # frames that should be replaced
    freeze: range | None = None  # frames of the intentional freeze
    at_cut: tuple[int, ...] = ()  # drops right before a cut: must stay copies
    colours: list[float] | None = None  # colour change of each pair, as pass 1 measures it (None: not measured)


# --- video in and out -----------------------------------------------------------------------------------------


def decode(path: Path, colours: list[float] | None = None) -> tuple[list[np.ndarray], list[np.ndarray], Fraction]:
    """(yuv420p planes as one (H*3/2, W) array per frame, grey (H, W) frames, average frame rate); appends the
    colour change of each consecutive pair to ``colours`` when given (thumbnails as pass 1 makes them)."""
    yuv, grey = [], []
    previous = None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate)
        for frame in container.decode(stream):
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


def encode(frames: list[np.ndarray], rate: Fraction, path: Path, encoding: str) -> None:
    """Encode yuv420p frames: ``ffv1`` (lossless, .mkv), ``crfNN`` (libx264 medium, .mp4) or ``fast-crfNN``
    (libx264 ultrafast, .mp4)."""
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
            frame.pts, frame.time_base = i, 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def downscale(frame: np.ndarray, factor: int) -> np.ndarray:
    """Box-average by an integer factor (what a small analysis frame would be)."""
    if factor == 1:
        return frame
    h, w = frame.shape[0] // factor * factor, frame.shape[1] // factor * factor
    blocks = frame[:h, :w].reshape(h // factor, factor, w // factor, factor).astype(np.float32)
    return (blocks.mean(axis=(1, 3)) + 0.5).astype(np.uint8)


def roundtrip_scores(frames: list[np.ndarray], rate: Fraction, encoding: str, tmp: Path,
                     factor: int) -> tuple[list[float], list[float]]:
    """(grey scores, colour changes) of the frames after encoding them with ``encoding`` and decoding."""
    path = tmp / ("v.mkv" if encoding == "ffv1" else "v.mp4")
    encode(frames, rate, path, encoding)
    colours: list[float] = []
    _, grey, _ = decode(path, colours)
    if len(grey) != len(frames):
        raise RuntimeError(f"{encoding}: {len(frames)} frames in, {len(grey)} decoded")
    return difference_scores([downscale(g, factor) for g in grey]), colours


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
    return sorted(random_drops + after_cut), at_cut, freeze


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

    def add(self, other: Tally) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def evaluate(case: Case, settings: DetectionSettings) -> Tally:
    detection = detect(case.scores, settings, colours=case.colours)
    plan = plan_fix_drops(len(case.scores) + 1, detection)
    replaced = {i for i, op in enumerate(plan.frames) if isinstance(op, Synth)}
    tally = Tally()
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


def build_cases(seeds: range, factor: int) -> list[Case]:
    cases = []
    with tempfile.TemporaryDirectory(prefix="retime-measure-") as tmpdir:
        tmp = Path(tmpdir)
        for clip, known in KNOWN_DUPLICATES.items():
            t0 = time.time()
            colours: list[float] = []
            yuv, grey, rate = decode(CLIPS / clip, colours)
            scores = difference_scores([downscale(g, factor) for g in grey])
            cases.append(Case(clip, "original", None, "original", scores, set(known), colours=colours))
            cuts = detect(scores, colours=colours).cuts  # cuts of the original, to place drops at them
            for seed in seeds:
                rng = np.random.default_rng([seed, len(yuv)])
                drops, at_cut, freeze = damage(len(yuv), rng, set(known), cuts)
                damaged = apply_damage(yuv, drops + at_cut + list(freeze or ()))
                for encoding in ENCODINGS:
                    scored, changes = roundtrip_scores(damaged, rate, encoding, tmp, factor)
                    cases.append(Case(clip, encoding, seed, "damaged", scored, set(drops) | set(known), freeze,
                                      tuple(at_cut), changes))
            pan = slow_pan(yuv[len(yuv) // 2])
            for encoding in ENCODINGS:
                scored, changes = roundtrip_scores(pan, rate, encoding, tmp, factor)
                cases.append(Case(clip, encoding, None, "pan", scored, set(), colours=changes))
            print(f"# {clip}: {len(yuv)} frames {grey[0].shape[1]}x{grey[0].shape[0]} @ {rate} fps, "
                  f"encoded and scored in {time.time() - t0:.1f} s", file=sys.stderr)
    return cases


# --- reports --------------------------------------------------------------------------------------------------


def report_originals(cases: list[Case], settings: DetectionSettings) -> None:
    print("## Original files\n")
    for case in (c for c in cases if c.kind == "original"):
        s = np.asarray(case.scores)
        detection = detect(case.scores, settings, colours=case.colours)
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
          "| slow pan: frames wrongly repaired |")
    print("|---|---|---|---|---|---|---|---|")
    totals: dict[str, Tally] = {}
    for clip in KNOWN_DUPLICATES:
        original = next(c for c in cases if c.kind == "original" and c.clip == clip)
        t = evaluate(original, settings)
        print(f"| {clip} | original file | {len(original.truth)} (real) | {t.precision:.3f} | {t.recall:.3f} "
              f"| - | - | - |")
        for encoding in ENCODINGS:
            tally = Tally()
            for case in cases:
                if case.clip == clip and case.encoding == encoding and case.kind in ("damaged", "pan"):
                    tally.add(evaluate(case, settings))
            totals.setdefault(encoding, Tally()).add(tally)
            print(f"| {clip} | {encoding} | {tally.tp + tally.fn} | {tally.precision:.3f} | {tally.recall:.3f} "
                  f"| {tally.freeze_kept}/{tally.freezes} | {tally.cut_kept}/{tally.cut_drops} | {tally.pan_false} |")
    for encoding, t in totals.items():
        print(f"| all | {encoding} | {t.tp + t.fn} | {t.precision:.3f} | {t.recall:.3f} | {t.freeze_kept}/{t.freezes} "
              f"| {t.cut_kept}/{t.cut_drops} | {t.pan_false} |")
    print()


#: The grid that --sweep searches (the other settings stay at their defaults).
SWEEP_GRID = dict(threshold=[0.4, 0.5, 0.6, 0.8], dip_ratio=[0.3, 0.35, 0.4, 0.45],
                  deep_ratio=[0.0, 0.05, 0.1, 0.15, 0.2], window=[4, 6, 8], min_motion=[0.3, 0.5, 0.7])


def sweep(cases: list[Case], top: int = 25) -> None:
    """Grid search over SWEEP_GRID, on lossless and medium-preset encodings (what EVAL.md prescribes; the
    ultrafast ones are reported beside, see docs/detection.md). Hard failures are counted: a wrong frame on an
    original file (whose real duplicates are known), a freeze not kept whole, a drop at a cut blended across it, a
    frame repaired in a slow pan. Ranked by fewest hard failures, then the worst F1 over the (clip, encoding)
    cells, then the mean F1: a setting must work everywhere, not win on average."""
    rows = []
    cells = sorted({(c.clip, c.encoding) for c in cases if c.kind == "damaged"})
    for values in itertools.product(*SWEEP_GRID.values()):
        settings = DetectionSettings(**dict(zip(SWEEP_GRID, values)))
        failures, f1s, fast_f1s = 0, [], []
        for clip, encoding in cells:
            tally = Tally()
            for case in cases:
                if case.clip == clip and case.encoding == encoding and case.kind in ("damaged", "pan"):
                    tally.add(evaluate(case, settings))
            p, r = tally.precision, tally.recall
            f1 = 2 * p * r / (p + r) if p + r else 0.0
            if encoding.startswith("fast-"):
                fast_f1s.append(f1)
                continue
            failures += (tally.freezes - tally.freeze_kept) + (tally.cut_drops - tally.cut_kept) + tally.pan_false
            f1s.append(f1)
        for case in cases:
            if case.kind == "original":
                t = evaluate(case, settings)
                failures += t.fp + t.fn
        rows.append((failures, min(f1s), float(np.mean(f1s)), float(np.mean(fast_f1s)) if fast_f1s else float("nan"),
                     dict(zip(SWEEP_GRID, values))))
    rows.sort(key=lambda r: (-r[0], r[1], r[2]), reverse=True)
    print(f"## Sweep: {len(rows)} settings, {sum(r[0] == 0 for r in rows)} without a hard failure\n")
    print("| hard failures | worst F1 | mean F1 | mean F1, ultrafast | settings |")
    print("|---|---|---|---|---|")
    for failures, worst, mean, fast, values in rows[:top]:
        print(f"| {failures} | {worst:.3f} | {mean:.3f} | {fast:.3f} | {values} |")
    print()


TUNABLE = ("threshold", "floor", "dip_ratio", "deep_ratio", "window", "min_motion")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2, help="damage patterns per clip (default 2)")
    parser.add_argument("--first-seed", type=int, default=0, help="seed of the first damage pattern (default 0)")
    parser.add_argument("--downscale", type=int, default=1, help="analyse grey frames box-averaged by this factor")
    parser.add_argument("--sweep", action="store_true", help="also grid-search the detection settings")
    for name in TUNABLE:
        parser.add_argument(f"--{name.replace('_', '-')}", type=int if name == "window" else float,
                            help=f"override the default {name}")
    parser.add_argument("--cache", type=Path, help="pickle of the scored cases: reused when present, else written")
    args = parser.parse_args()
    overrides = {k: getattr(args, k) for k in TUNABLE
                 if getattr(args, k) is not None}
    settings = DetectionSettings(**overrides)
    t0 = time.time()
    if args.cache and args.cache.exists():
        cases = pickle.loads(args.cache.read_bytes())
    else:
        cases = build_cases(range(args.first_seed, args.first_seed + args.seeds), args.downscale)
        if args.cache:
            args.cache.write_bytes(pickle.dumps(cases))
    print(f"# measure_detection: seeds {args.first_seed}..{args.first_seed + args.seeds - 1}, "
          f"downscale {args.downscale}\n")
    report_originals(cases, settings)
    report_gap(cases)
    report_table(cases, settings)
    if args.sweep:
        sweep(cases)
    print(f"# done in {time.time() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
