"""fix-drops against its floor (a plain decode + re-encode with the same encoder settings) on long clips, with
where the time goes.

The clips: bigbuckbunny.mp4 without its own 24 -> 25 fps repeats (frames 7, 32, 57, 82, 107), resized (Lanczos),
played forwards and backwards until the length is reached (no scene cut at the turns), a fraction of frames
replaced by the frame before (runs of 1-3 at seeded positions, as the bench damages clips), x264 CRF 18 medium.
Each measurement runs in a fresh interpreter; the floor and fix-drops alternate, ``--rounds`` times.

Usage: PYTHONPATH=. python scripts/measure_fixdrops.py [--sizes 640x360,1280x720] [--seconds 60,20]
       [--fractions 0.01,0.03,0.05] [--rounds 1] [--quality balanced] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "assets" / "clips" / "bigbuckbunny.mp4"
OWN_REPEATS = (7, 32, 57, 82, 107)

_WORKER = r"""
import json, resource, sys, time
started = time.monotonic()
job = json.loads(sys.argv[1])
from retime import configure_process
from retime.media import EncodeSettings
configure_process()
if job["job"] == "floor":
    from pathlib import Path
    from retime_bench.clipio import reencode
    reencode(Path(job["input"]), Path(job["output"]), EncodeSettings())
    out = {}
else:
    from retime.pipeline import ModelSettings, _model, fix_drops
    spent = {"model": 0.0, "calls": 0}
    build = _model._build_engine
    def timed_build(*args, **kwargs):
        # wrapped on each engine as it is built, so that torch is imported where the command imports it (beside
        # pass 1), not here
        engine = build(*args, **kwargs)
        call = engine.interpolate
        def timed(*args, **kwargs):
            t = time.monotonic()
            try:
                return call(*args, **kwargs)
            finally:
                spent["model"] += time.monotonic() - t
                spent["calls"] += 1
        engine.interpolate = timed
        return engine
    _model._build_engine = timed_build
    marks = {}
    def progress(stage, done, total):
        now = time.monotonic()
        marks.setdefault(stage, [now, now])[1] = now
    t0 = time.monotonic()
    result = fix_drops(job["input"], job["output"], overwrite=True, progress=progress,
                       model=ModelSettings(quality=job["quality"]))
    end = time.monotonic()
    a0, a1 = marks["analyse"]
    r0, r1 = marks.get("render", (a1, a1))
    out = {"imports": t0 - started, "pass1": a1 - t0, "settle": r0 - a1, "pass2": r1 - r0, "tail": end - r1,
           "model_calls": spent["calls"], "model_s": spent["model"], "synthesized": result.synthesized,
           "setting": result.model and {k: result.model[k] for k in ("model", "scale", "ensemble", "searched")}}
usage = resource.getrusage(resource.RUSAGE_SELF)
out.update(seconds=time.monotonic() - started, cpu_s=usage.ru_utime + usage.ru_stime)
print(json.dumps(out))
"""


def make_clip(path: Path, width: int, height: int, seconds: float, fraction: float) -> int:
    """Write the test clip (see the module docstring); returns the number of repeated frames."""
    import av

    from retime_bench.clipio import write_video
    from retime_bench.dropfix import damage_positions

    with av.open(str(CLIP)) as container:
        source = [frame.reformat(width=width, height=height, format="yuv420p", interpolation="LANCZOS")
                  for k, frame in enumerate(container.decode(video=0)) if k not in OWN_REPEATS]
    rate = Fraction(25)
    n = round(seconds * rate)
    order, i, step = [], 0, 1
    while len(order) < n:
        order.append(i)
        if not 0 <= i + step < len(source):
            step = -step
        i += step
    repeats = set(damage_positions(n, fraction=fraction, seed=1))
    shown = []  # the source frame each output frame shows: a repeat shows what the frame before it showed
    for k, index in enumerate(order):
        shown.append(shown[-1] if k in repeats else index)
    write_video((source[i] for i in shown), path, rate=rate, codec="libx264", crf=18)
    return len(repeats)


def run(job: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", _WORKER, json.dumps(job)], capture_output=True, text=True,
                          env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-800:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="640x360,1280x720")
    parser.add_argument("--seconds", default="60,20", help="clip length per size (seconds)")
    parser.add_argument("--fractions", default="0.01,0.03,0.05")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--quality", default="balanced")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    lengths = [float(s) for s in args.seconds.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="retime-fixdrops-") as tmp:
        for (width, height), seconds in zip(sizes, lengths):
            for fraction in (float(f) for f in args.fractions.split(",")):
                clip = Path(tmp) / f"clip_{width}x{height}_{fraction}.mp4"
                repeats = make_clip(clip, width, height, seconds, fraction)
                for _ in range(args.rounds):
                    floor = run({"job": "floor", "input": str(clip), "output": str(Path(tmp) / "floor.mp4")})
                    fix = run({"job": "fix_drops", "input": str(clip), "output": str(Path(tmp) / "fixed.mp4"),
                               "quality": args.quality})
                    row = {"size": f"{width}x{height}", "seconds": seconds, "fraction": fraction,
                           "repeats": repeats, "floor": floor, "fix_drops": fix,
                           "ratio": fix["seconds"] / floor["seconds"]}
                    rows.append(row)
                    print(f"{width}x{height} {seconds:.0f} s, {repeats} repeats ({fraction:.0%}): floor "
                          f"{floor['seconds']:.1f} s ({floor['cpu_s']:.1f} CPU s), fix-drops {fix['seconds']:.1f} s "
                          f"({fix['cpu_s']:.1f} CPU s), ratio {row['ratio']:.2f} | imports {fix['imports']:.1f}, "
                          f"pass 1 {fix['pass1']:.1f}, settle {fix['settle']:.1f}, pass 2 {fix['pass2']:.1f} "
                          f"(model {fix['model_s']:.1f} s in {fix['model_calls']} calls, "
                          f"{fix['synthesized']} synthesized), tail {fix['tail']:.1f} | {fix['setting']}",
                          flush=True)
    if args.json:
        args.json.write_text(json.dumps({"load": os.getloadavg(), "at": time.strftime("%F %T"), "rows": rows},
                                        indent=1))


if __name__ == "__main__":
    main()
