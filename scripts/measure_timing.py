"""Measure retime's timing repairs (gaps and cadences; docs/timing.md has the protocol and the results).

1. Gaps (per clip in assets/clips/, per seed): frames deleted at seeded positions (about 5 % of them, runs of 1-3,
   at least two kept frames between runs), the PTS of the rest kept; written losslessly (FFV1 in Matroska, 1 ms
   time base: 29.97 fps rounds to 33/34 ms) and with libx264 medium at CRF 18 and 23 (MP4), the source's audio
   remuxed beside. Reported: the nominal rate found, precision and recall of the gap positions (a gap counts when
   its frame and its number of missing frames are right). With ``--model``, on the lossless input of the first
   seed, ``fix-drops --codec ffv1`` with the real model: frame count, video duration and audio packets against the
   original, kept frames bit-exact, and the filled frames' PSNR against the deleted truth next to the model's own
   interpolation of the same instants from the same (undamaged) neighbours.
2. Cadences: a virtual camera panning over a frame of bigbuckbunny.mp4 (cubic-spline sub-pixel resampling,
   :mod:`retime_bench.camera`), rendered at 24 fps and at 16.67 fps, converted to 25 fps by repeating the nearest
   frame, losslessly; ``fix-drops --cadence fill|retime|decimate`` with the real model (``--model``): mean PSNR of
   each against the true 25 fps frames, the motion spread (:func:`retime_bench.camera.motion_spread`) of each and of
   the truth, and whether decimate gives the source frames back bit-exact.
3. Evenness of motion without ground truth (``--model --real``): the motion spread of bigbuckbunny.mp4 (a 24 fps
   film in 25 fps) as it is, after ``--cadence fill`` and after ``--cadence retime``.

Usage:
    .venv/bin/python scripts/measure_timing.py [--seeds 3] [--first-seed 0] [--model [--real]] [--size 320x192]
        [--no-table] [--skip-gaps] [--skip-cadence]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from retime_bench.camera import VirtualCamera, convert, motion_spread  # noqa: E402
from retime.media import EncodeSettings, iter_frames, to_rgb  # noqa: E402
from retime.metrics import psnr  # noqa: E402
from retime.pipeline import analyse, fix_drops  # noqa: E402
from retime.plan import Copy  # noqa: E402

CLIPS = ROOT / "assets" / "clips"
NAMES = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
ENCODINGS = ("ffv1", "crf18", "crf23")
DELETE_FRACTION = 0.05


def read(path: Path) -> tuple[list[av.VideoFrame], Fraction]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [f for f in c.decode(s)]
        return frames, Fraction(s.average_rate)


def deletions(n: int, rng: np.random.Generator) -> list[int]:
    """Seeded runs of 1-3 deleted frames, about DELETE_FRACTION of n, two kept frames between runs."""
    out: list[int] = []
    target = max(1, round(n * DELETE_FRACTION))
    while len(out) < target:
        start, length = int(rng.integers(2, n - 5)), int(rng.choice([1, 2, 3], p=[0.6, 0.25, 0.15]))
        run = range(start, start + length)
        if all(abs(i - j) > 2 for i in run for j in out):
            out += list(run)
    return sorted(out)


def write(frames: list[av.VideoFrame], kept: list[int], rate: Fraction, path: Path, encoding: str,
          audio_from: Path | None) -> None:
    """The kept frames at their original PTS (1 ms for Matroska, 1/(rate's numerator) for MP4), audio remuxed."""
    out = av.open(str(path), "w")
    codec, options = ("ffv1", {}) if encoding == "ffv1" else ("libx264", {"crf": encoding[3:], "preset": "medium"})
    video = out.add_stream(codec, rate=rate, options=options)
    video.width, video.height, video.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
    tb = Fraction(1, 1000) if path.suffix == ".mkv" else 1 / (rate * 512)
    video.codec_context.time_base = tb
    video.time_base = tb
    source = av.open(str(audio_from)) if audio_from else None
    sound = None
    if source is not None and source.streams.audio:
        sound = out.add_stream_from_template(source.streams.audio[0])
    for i in kept:
        f = av.VideoFrame.from_ndarray(frames[i].to_ndarray(), format=frames[i].format.name)
        f.pts = round(Fraction(i) / rate / tb)
        f.time_base = tb
        out.mux(video.encode(f))
    out.mux(video.encode(None))
    if sound is not None:
        for packet in source.demux(source.streams.audio[0]):
            if packet.size:
                packet.stream = sound
                out.mux(packet)
    out.close()
    if source is not None:
        source.close()


def audio_packets(path: Path) -> list[tuple[int, bytes]]:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        return [(p.pts, bytes(p)) for p in c.demux(c.streams.audio[0]) if p.size]


def video_end(path: Path) -> Fraction:
    """The video's end: its last frame's time plus that frame's duration (seconds), as the pipeline reads it."""
    return analyse(path).end_time


def measure_gaps(seeds: range, model, tmp: Path, table: bool = True) -> None:
    if table:
        gap_table(seeds, tmp)
    if model is not None:
        gap_repair(seeds, model, tmp)


def gap_table(seeds: range, tmp: Path) -> None:
    print("\n## Gaps: deleted frames, PTS of the rest kept\n")
    print("| clip | encoding | deleted frames (gaps) | nominal rate | gap precision | gap recall |")
    print("|---|---|---|---|---|---|")
    for name in NAMES:
        frames, rate = read(CLIPS / name)
        n = len(frames)
        for encoding in ENCODINGS:
            hits = found = truth_count = deleted_total = 0
            rates = set()
            for seed in seeds:
                deleted = deletions(n, np.random.default_rng(seed))
                kept = [i for i in range(n) if i not in set(deleted)]
                truth = {}
                for i in deleted:
                    after = kept.index(next(j for j in kept if j > i))
                    truth[after] = truth.get(after, 0) + 1
                path = tmp / f"{Path(name).stem}-{seed}-{encoding}.{'mkv' if encoding == 'ffv1' else 'mp4'}"
                write(frames, kept, rate, path, encoding, CLIPS / name)
                timing = analyse(path).timing
                rates.add(str(timing.rate))
                got = {g.index: g.missing for g in timing.gaps}
                hits += sum(1 for k, v in got.items() if truth.get(k) == v)
                found, truth_count = found + len(got), truth_count + len(truth)
                deleted_total += len(deleted)
            print(f"| {name} | {encoding} | {deleted_total} ({truth_count}) | {', '.join(sorted(rates))} | "
                  f"{hits / found if found else 1:.3f} | {hits / truth_count if truth_count else 1:.3f} |")


def gap_repair(seeds: range, model, tmp: Path) -> None:
    print("\n## Gaps: fix-drops --codec ffv1 on the lossless input (first seed, real model)\n")
    print("| clip | frames in / out / original | video end out = original | audio packets equal | "
          "kept frames bit-exact | filled: PSNR vs truth | model from the true neighbours | difference (dB) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in NAMES:
        frames, rate = read(CLIPS / name)
        n = len(frames)
        deleted = deletions(n, np.random.default_rng(seeds[0]))
        kept = [i for i in range(n) if i not in set(deleted)]
        src, out = tmp / f"{Path(name).stem}-model.mkv", tmp / f"{Path(name).stem}-fixed.mkv"
        write(frames, kept, rate, src, "ffv1", CLIPS / name)
        result = fix_drops(src, out, encode=EncodeSettings(codec="ffv1"), interpolator=model, overwrite=True)
        outs = list(iter_frames(out))
        ins = list(iter_frames(src))
        # every source frame the plan copies (not the real duplicates it repairs) is bit-exact at its place
        exact = all(np.array_equal(outs[i].frame.to_ndarray(), ins[j].frame.to_ndarray())
                    for j, i in enumerate(kept) if isinstance(result.plan.frames[i], Copy))
        truth = [to_rgb(f) for f in frames]
        got, ref = [], []
        for i in deleted:
            a = max(j for j in kept if j < i)
            b = min(j for j in kept if j > i)
            t = (i - a) / (b - a)
            got.append(psnr(outs[i].rgb, truth[i]))
            # the model's frame stored as the output stores it (yuv420p), as the pipeline's frame was
            made = model.interpolate(truth[a], truth[b], [t])[0]
            stored = av.VideoFrame.from_ndarray(made, format="rgb24").reformat(format=frames[i].format.name)
            ref.append(psnr(to_rgb(stored), truth[i]))
        print(f"| {name} | {len(kept)} / {result.frames_written} / {n} | "
              f"{video_end(out) == video_end(CLIPS / name)} ({float(video_end(out)):.3f} s) | "
              f"{audio_packets(out) == audio_packets(src)} | {exact} | {np.mean(got):.2f} | {np.mean(ref):.2f} | "
              f"{np.mean(got) - np.mean(ref):+.3f} |")


def measure_cadence(model, tmp: Path, size: tuple[int, int]) -> None:
    from skimage.transform import resize

    with av.open(str(CLIPS / "bigbuckbunny.mp4")) as c:
        image = next(f for i, f in enumerate(c.decode(video=0)) if i == 60).to_ndarray(format="rgb24")
    image = (resize(image, (540, 960), anti_aliasing=True) * 255).round().astype(np.uint8)
    width, height = size
    camera = VirtualCamera(image, width, height, start=(40.0, 60.0), velocity=(90.0, 24.0), zoom=0.02)
    print(f"\n## Cadences: virtual camera ({width}x{height}, pan 90 px/s, zoom 2 %/s over a bigbuckbunny frame), "
          "converted to 25 fps by nearest-frame repeats, FFV1\n")
    print("| source | frames | mode | frames out | synthesized | mean PSNR vs truth (dB) | motion spread | "
          "truth's spread | decimate bit-exact |")
    print("|---|---|---|---|---|---|---|---|---|")
    for source_rate, n_out in ((Fraction(24), 100), (Fraction(50, 3), 60)):
        shown = convert(source_rate, Fraction(25), n_out)
        source = [camera.frame(Fraction(i) / source_rate) for i in range(shown[-1] + 1)]
        truth = [camera.frame(Fraction(j, 25)) for j in range(n_out)]
        clip = tmp / f"cadence-{source_rate.numerator}.mkv"
        out = av.open(str(clip), "w")
        s = out.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = width, height, "yuv444p"
        for j, i in enumerate(shown):
            f = av.VideoFrame.from_ndarray(source[i], format="rgb24").reformat(format="yuv444p")
            f.pts = j
            out.mux(s.encode(f))
        out.mux(s.encode(None))
        out.close()
        truth_spread = motion_spread(truth)
        inputs = [f.frame.to_ndarray() for f in iter_frames(clip)]
        for mode in ("fill", "retime", "decimate"):
            path = tmp / f"cadence-{source_rate.numerator}-{mode}.mkv"
            started = time.monotonic()
            result = fix_drops(clip, path, encode=EncodeSettings(codec="ffv1"), interpolator=model, cadence=mode,
                               overwrite=True)
            frames = [f.rgb for f in iter_frames(path)]
            if mode == "decimate":
                planes = [f.frame.to_ndarray() for f in iter_frames(path)]
                exact = all(np.array_equal(p, inputs[shown.index(i)]) for i, p in enumerate(planes))
                quality = np.mean([psnr(a, b) for a, b in zip(frames, source)])
                print(f"| {float(source_rate):.2f} fps | {n_out} | decimate | {len(frames)} at "
                      f"{result.out_rate} fps | 0 | {quality:.2f} (vs the source frames) | "
                      f"{motion_spread(frames):.3f} | - | {exact} |")
                continue
            quality = np.mean([psnr(a, b) for a, b in zip(frames, truth)])
            print(f"| {float(source_rate):.2f} fps | {n_out} | {mode} | {len(frames)} | {result.synthesized} | "
                  f"{quality:.2f} | {motion_spread(frames):.3f} | {truth_spread:.3f} | - |  "
                  f"<!-- {time.monotonic() - started:.0f} s -->")


def measure_real_spread(model, tmp: Path) -> None:
    """Evenness of motion without ground truth: bigbuckbunny.mp4 (24 fps film in 25) before and after."""
    clip = CLIPS / "bigbuckbunny.mp4"
    print("\n## Motion spread on bigbuckbunny.mp4 (no ground truth), before and after\n")
    print("| video | frames | synthesized | motion spread (difference) | motion spread (flow) |")
    print("|---|---|---|---|---|")
    frames = [f.rgb for f in iter_frames(clip)]
    print(f"| input | {len(frames)} | - | {motion_spread(frames):.3f} | {motion_spread(frames, measure='flow'):.3f} |")
    for mode in ("fill", "retime"):
        out = tmp / f"bbb-{mode}.mkv"
        result = fix_drops(clip, out, encode=EncodeSettings(codec="ffv1"), interpolator=model, cadence=mode,
                           overwrite=True)
        frames = [f.rgb for f in iter_frames(out)]
        print(f"| --cadence {mode} | {result.frames_written} | {result.synthesized} | {motion_spread(frames):.3f} | "
              f"{motion_spread(frames, measure='flow'):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--model", action="store_true", help="also run fix-drops with the real model")
    parser.add_argument("--model-name", default=None, help="registry name of the model (`retime weights list`)")
    parser.add_argument("--size", default="320x192", help="virtual camera frame size, WxH")
    parser.add_argument("--skip-gaps", action="store_true", help="only the cadence part")
    parser.add_argument("--no-table", action="store_true", help="skip the gap-detection table (no model)")
    parser.add_argument("--skip-cadence", action="store_true", help="skip the cadence part")
    parser.add_argument("--real", action="store_true", help="also the motion spread of bigbuckbunny.mp4 re-timed "
                        "(with --model; 126 frames synthesized at 1280x720)")
    args = parser.parse_args()
    model = None
    if args.model:
        from retime.interpolate import Interpolator

        model = Interpolator(device="cpu", model=args.model_name)
        print(f"model: {args.model_name or 'the registry default'}")
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        if not args.skip_gaps:
            measure_gaps(range(args.first_seed, args.first_seed + args.seeds), model, tmp, table=not args.no_table)
        if model is not None and not args.skip_cadence:
            measure_cadence(model, tmp, size)
        if model is not None and args.real:
            measure_real_spread(model, tmp)


if __name__ == "__main__":
    main()
