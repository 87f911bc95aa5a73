"""Synthesized frames per second and peak device memory of the model + engine, per size, model and quality setting.

    python scripts/gpu_bench.py --device cuda                # 1280x720, 1920x1080, 3840x2160 (scripts/gpu_check.sh)
    python scripts/gpu_bench.py --device cpu --quick         # tiny sizes, a few settings: checks this script itself

What one "synthesized frame" costs here is what ``upsample --factor 2`` pays per output frame in the model: one new
source frame prepared (uploaded, padded, encoded for 4.2x) and one ``interpolate(prev, next, [0.5])`` down to a
uint8 RGB array on the host. Decoding and encoding are not included (``make bench`` measures whole commands).
The frames are two consecutive frames of a real clip (assets/clips/bigbuckbunny.mp4, 1280x720), resized with
bicubic interpolation to each size (upscaled for 1080p and 4K).

The settings are those the ``--quality`` presets render (retime.defaults.QUALITY_PRESETS): each model at the size
rule's flow scale with and without ensembling (``fast``: 4.6 without; ``balanced``: with; ``best``: either), then
the other scales ``best`` searches. Each row runs for ``--row-seconds`` after a warm-up; the whole run stops
starting rows when ``--budget`` seconds are spent and lists what it skipped. A second table gives, per model at the
first size, the PSNR of the device's reduced precision (float16 on CUDA) against float32.

Needs torch, numpy and PyAV or OpenCV (to decode two frames); never scikit-image, never ``retime bench``, never the
network: the weights are looked up as retime does (user cache, then the checkout's weights/), nothing is fetched.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

SIZES = [(1280, 720), (1920, 1080), (3840, 2160)]
QUICK_SIZES = [(128, 72), (192, 108), (256, 144)]
MODELS = ["rife-4.6", "rife-4.2x"]


def decode_pair(path: Path, first: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``first`` and ``first + 1`` of a clip, (H, W, 3) uint8 RGB, by PyAV or else OpenCV."""
    if not path.is_file():
        raise SystemExit(f"gpu_bench: {path} is missing (make clips, or carry assets/clips)")
    frames = []
    if importlib.util.find_spec("av") is not None:
        import av

        with av.open(str(path)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i >= first:
                    frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) == 2:
                    break
    elif importlib.util.find_spec("cv2") is not None:
        import cv2

        capture = cv2.VideoCapture(str(path))
        for i in range(first + 2):
            ok, bgr = capture.read()
            if not ok:
                break
            if i >= first:
                frames.append(np.ascontiguousarray(bgr[:, :, ::-1]))
        capture.release()
    else:
        raise SystemExit("gpu_bench: neither PyAV (av) nor OpenCV (cv2) is installed: cannot decode the clip")
    if len(frames) != 2:
        raise SystemExit(f"gpu_bench: {path} has fewer than {first + 2} frames")
    return frames[0], frames[1]


def resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resize of a uint8 RGB frame (antialiased when shrinking), on the CPU."""
    if frame.shape[:2] == (height, width):
        return frame
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
    shrink = height < frame.shape[0]
    y = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False, antialias=shrink)
    return np.ascontiguousarray(y[0].clamp_(0, 255).round_().to(torch.uint8).permute(1, 2, 0).numpy())


def settings(width: int, height: int, quick: bool) -> list[tuple[str, float, bool, str]]:
    """``(model, scale, ensemble, presets)`` in the order they run: each preset's setting at the size rule's scale
    first, then the other scales the searching presets try. ``presets`` names the presets that can render it."""
    from retime.defaults import DEFAULTS, QUALITY_PRESETS

    base = 0.5 if width * height > 2560 * 1440 else 1.0  # the size rule (engine.AUTO_HALF_SCALE_PIXELS)
    rows: dict[tuple[str, float, bool], list[str]] = {}
    for preset in QUALITY_PRESETS.values():
        for model in MODELS:  # a preset renders any model given with --model; its own are listed first
            for step in preset.scale_steps:
                scale = base * step
                if scale not in DEFAULTS.scale_choices:
                    continue
                for ensemble in preset.ensembles:
                    names = rows.setdefault((model, scale, ensemble), [])
                    own = model in preset.models
                    names.append(preset.name if own else f"{preset.name}*")
    order = sorted(rows, key=lambda k: (k[1] != base, MODELS.index(k[0]), k[2], -k[1]))
    if quick:
        order = [k for k in order if k[1] == base]
    return [(m, s, e, ",".join(rows[(m, s, e)])) for m, s, e in order]


def measure(engine, frames: list[np.ndarray], scale: float, ensemble: bool, row_seconds: float, min_frames: int,
            warmup: int) -> tuple[float, int, float]:
    """``(synthesized frames per second, frames timed, seconds of the warm-up)`` for one setting."""
    engine.scale, engine.ensemble = scale, ensemble
    started = time.perf_counter()
    prev = engine.prepare(frames[0])
    for i in range(warmup):
        nxt = engine.prepare(frames[(i + 1) % 2])
        engine.interpolate(prev, nxt, [0.5])
        prev = nxt
    warm = time.perf_counter() - started
    n, t0 = 0, time.perf_counter()
    while n < min_frames or time.perf_counter() - t0 < row_seconds:
        nxt = engine.prepare(frames[(n + 1) % 2])
        engine.interpolate(prev, nxt, [0.5])  # a uint8 array on the host: the device has finished
        prev, n = nxt, n + 1
    return n / (time.perf_counter() - t0), n, warm


def parity(engines: dict, frames: list[np.ndarray]) -> list[dict]:
    """Per model: PSNR of the engine's own precision against float32, and against float32 with TF32 allowed."""
    from retime.interpolate import Interpolator
    from retime.metrics import psnr

    out = []
    for name, engine in engines.items():
        engine.scale, engine.ensemble = None, False
        got = engine.interpolate(frames[0], frames[1], [0.5])[0]
        exact = Interpolator(device=str(engine.device), model=name, precision="float32")
        saved = torch.backends.cudnn.allow_tf32
        try:
            torch.backends.cudnn.allow_tf32 = False
            want = exact.interpolate(frames[0], frames[1], [0.5])[0]
            torch.backends.cudnn.allow_tf32 = True
            tf32 = exact.interpolate(frames[0], frames[1], [0.5])[0]
        finally:
            torch.backends.cudnn.allow_tf32 = saved
        dtype = str(engine.conv_dtype or torch.float32).removeprefix("torch.")
        out.append({"model": name, "precision": dtype, "psnr_vs_float32": round(psnr(got, want), 2),
                    "float32_tf32_vs_float32": round(psnr(tf32, want), 2) if engine.device.type == "cuda" else None})
        del exact
    return out


def table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A fixed-width text table (also valid Markdown)."""
    cells = [[str(r.get(k, "")) if r.get(k) is not None else "-" for k, _ in columns] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, (_, h) in enumerate(columns)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    return "\n".join([line([h for _, h in columns]), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *(line(c) for c in cells)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="auto, cpu or cuda (default: cuda)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and the size rule's scale only (a self-check)")
    p.add_argument("--sizes", help="comma-separated WxH list (default: 1280x720,1920x1080,3840x2160)")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--clip", type=Path, default=ROOT / "assets" / "clips" / "bigbuckbunny.mp4")
    p.add_argument("--frame", type=int, default=60, help="first of the two consecutive frames used (default 60)")
    p.add_argument("--budget", type=float, default=150.0, help="seconds; no row starts after that (default 150)")
    p.add_argument("--row-seconds", type=float, default=None, help="timed seconds per row (1.5; 0.2 with --quick)")
    p.add_argument("--min-frames", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--markdown", type=Path, help="write the tables here")
    args = p.parse_args(argv)
    started = time.perf_counter()
    deadline = started + args.budget
    row_seconds = args.row_seconds if args.row_seconds is not None else (0.2 if args.quick else 1.5)
    if args.quick:
        args.min_frames, args.warmup = min(args.min_frames, 1), min(args.warmup, 1)
    if importlib.util.find_spec("platformdirs") is None and not os.environ.get("RETIME_HOME"):
        # the weights are then looked up in the checkout's weights/ alone (the user cache needs platformdirs)
        os.environ["RETIME_HOME"] = tempfile.mkdtemp(prefix="retime-bench-home-")

    from retime._process import configure_process
    from retime.errors import ModelError, UsageError
    from retime.interpolate import Interpolator, choose_device

    configure_process()
    try:
        device, conv_dtype = choose_device(args.device)
    except UsageError as exc:
        print(f"gpu_bench: {exc}", file=sys.stderr)
        return 2
    cuda = device.type == "cuda"
    where = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"gpu_bench: torch {torch.__version__} on {device} ({where}); convolutions in "
          f"{str(conv_dtype or torch.float32).removeprefix('torch.')}; budget {args.budget:g} s, "
          f"{row_seconds:g} s per row", flush=True)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")] if args.sizes else \
        (QUICK_SIZES if args.quick else SIZES)
    source = decode_pair(args.clip, args.frame)
    engines, skipped = {}, []
    for name in args.models.split(","):
        try:
            engines[name] = Interpolator(device=str(device), model=name)
        except ModelError as exc:
            skipped.append(f"{name}: every row ({exc})")
            print(f"gpu_bench: skipping {name}: {exc}", flush=True)

    results = []
    for width, height in sizes:
        frames = [resize(f, width, height) for f in source]
        for model, scale, ensemble, presets in settings(width, height, args.quick):
            label = f"{width}x{height} {model} scale {scale:g}{' +ens' if ensemble else ''}"
            if model not in engines:
                continue
            left = deadline - time.perf_counter()
            if left < row_seconds:
                skipped.append(f"{label}: budget spent")
                continue
            if cuda:
                torch.cuda.synchronize(device)
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            row = {"size": f"{width}x{height}", "model": model, "scale": scale, "ensemble": ensemble,
                   "presets": presets}
            try:
                fps, n, warm = measure(engines[model], frames, scale, ensemble, row_seconds, args.min_frames,
                                       args.warmup)
            except torch.cuda.OutOfMemoryError as exc:
                row.update(fps=None, note=f"out of memory: {str(exc).splitlines()[0][:80]}")
                torch.cuda.empty_cache()
            else:
                row.update(fps=round(fps, 2), ms_per_frame=round(1000 / fps, 1), frames=n, warmup_s=round(warm, 2))
            if cuda:
                row["peak_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
            results.append(row)
            print(f"  {label:<44} {row.get('fps') or 0:8.2f} frames/s"
                  + (f"  peak {row['peak_mib']} MiB" if cuda else "") + f"  [{presets}]", flush=True)

    checks = []
    if engines and time.perf_counter() < deadline:
        width, height = sizes[0]
        checks = parity(engines, [resize(f, width, height) for f in source])
    elif engines:
        skipped.append("precision check: budget spent")

    columns = [("size", "size"), ("model", "model"), ("scale", "scale"), ("ensemble", "ensemble"),
               ("fps", "frames/s"), ("ms_per_frame", "ms/frame"), ("peak_mib", "peak MiB"),
               ("presets", "presets"), ("note", "note")]
    text = [f"## Synthesized frames per second on {device} ({where}), "
            f"{str(conv_dtype or torch.float32).removeprefix('torch.')} convolutions", "",
            table(results, columns), "",
            "presets: those that render the setting (name* = with --model naming this model)"]
    if checks:
        text += ["", f"## Precision at {sizes[0][0]}x{sizes[0][1]} (PSNR, dB, against float32 on this device)", "",
                 table(checks, [("model", "model"), ("precision", "convolutions"),
                                ("psnr_vs_float32", "vs float32"),
                                ("float32_tf32_vs_float32", "float32 with TF32 vs float32")])]
    text += ["", "skipped: " + ("; ".join(skipped) if skipped else "nothing"),
             f"total {time.perf_counter() - started:.1f} s"]
    print("\n" + "\n".join(text), flush=True)
    if args.markdown:
        args.markdown.write_text("\n".join(text) + "\n")
    if args.json:
        args.json.write_text(json.dumps({"device": str(device), "name": where, "torch": torch.__version__,
                                         "rows": results, "precision": checks, "skipped": skipped},
                                        indent=1, default=lambda v: None if isinstance(v, float) and
                                        math.isnan(v) else str(v)) + "\n")
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
