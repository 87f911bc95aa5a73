"""Peak resident memory of one fix-drops or upsample run, by stage: a thread samples VmRSS every 20 ms and the
progress callback labels each sample with the stage it falls in ("start", "analyse" (pass 1 and the settings
search), "render" (pass 2)).

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
        upsample(source, out, factor=2, **options)
    else:
        fix_drops(source, out, **options)
    running = False
    for stage in ("start", "analyse", "render"):
        values = [(m, d) for m, s, d in samples if s == stage]
        if values:
            peak = max(values)
            print(f"{stage:8s} peak {peak[0]} MiB (at frame {peak[1]}), last {values[-1][0]} MiB")
    print(f"VmHWM {_status('VmHWM')} MiB")


if __name__ == "__main__":
    main(sys.argv[1:])
