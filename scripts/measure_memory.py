"""Peak resident memory of one fix-drops or upsample run, by stage: a thread samples VmRSS every 20 ms and the
progress callback labels each sample with the stage it falls in ("start", "analyse" (pass 1 and the settings
search), "render" (pass 2)); then the run's wall time per synthesized frame and the model setting it used.

Usage: PYTHONPATH=. python scripts/measure_memory.py upsample|fix-drops IN [CODEC]     (CODEC e.g. ffv1)
"""

from __future__ import annotations

import sys
import threading
import time

from retime import configure_process
from retime.media import EncodeSettings
from retime.pipeline import fix_drops, upsample


def _status(key: str) -> int:
    """A /proc/self/status value in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) // 1024
    return -1


def main(argv: list[str]) -> None:
    command, source = argv[0], argv[1]
    codec = argv[2] if len(argv) > 2 else None
    configure_process()
    state = {"stage": "start", "done": 0}
    samples: list[tuple[int, str, int]] = []
    running = True

    def sample() -> None:
        while running:
            samples.append((_status("VmRSS"), state["stage"], state["done"]))
            time.sleep(0.02)

    def progress(stage: str, done: int, total) -> None:
        state["stage"], state["done"] = stage, done

    threading.Thread(target=sample, daemon=True).start()
    out = "/tmp/retime-measure-memory" + (".mkv" if codec else ".mp4")
    options = dict(encode=EncodeSettings(codec=codec), overwrite=True, progress=progress)
    if command == "upsample":
        result = upsample(source, out, factor=2, **options)
    else:
        result = fix_drops(source, out, **options)
    running = False
    setting = result.model or {}
    per_frame = result.seconds / result.synthesized if result.synthesized else float("nan")
    print(f"{result.frames_written} frames written, {result.synthesized} synthesized in {result.seconds:.1f} s "
          f"({per_frame:.2f} s per synthesized frame, everything included); model {setting.get('model')}, "
          f"scale {setting.get('scale')}, ensemble {setting.get('ensemble')}, searched {setting.get('searched')}")
    for stage in ("start", "analyse", "render"):
        values = [(m, d) for m, s, d in samples if s == stage]
        if values:
            peak = max(values)
            print(f"{stage:8s} peak {peak[0]} MiB (at frame {peak[1]}), last {values[-1][0]} MiB")
    print(f"VmHWM {_status('VmHWM')} MiB")


if __name__ == "__main__":
    main(sys.argv[1:])
