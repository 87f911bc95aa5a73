"""What the numbers were measured on: CPU model, cores, torch and its thread count, GPU, versions, date."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from retime._process import usable_cores

__all__ = ["machine_info", "cpu_model", "peak_rss_mib"]


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else :func:`platform.processor`."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


#: The /proc/cpuinfo flags that decide how fast retime's CPU convolutions run: float32 with AVX2 or AVX-512,
#: bfloat16 with AVX-512 BF16, bfloat16 on tile units with AMX.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_flags() -> list[str] | None:
    """Which of :data:`SPEED_FLAGS` the CPU reports (Linux ``/proc/cpuinfo``), or ``None`` where it cannot say."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return [flag for flag in SPEED_FLAGS if flag in present]
    except OSError:
        pass
    return None


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (MiB): ``VmHWM`` from ``/proc/self/status``, else ``getrusage``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024  # bytes on macOS, kB on Linux


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[1]  # the checkout: retime_bench/ sits at its top
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict[str, Any]:
    """The machine section of the bench JSON (and of docs/benchmarks.md's header)."""
    import av
    import numpy
    import torch

    from retime import __version__

    from retime.interpolate import choose_device
    from retime_bench.ffmpeg import ffmpeg_version

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    conv_dtype = choose_device("cpu")[1]
    return {
        "cpu": cpu_model(),
        # the vector instructions PyTorch dispatches to ("AVX2", "AVX512", ...) and the dtype retime's default CPU
        # engine runs its convolutions in (bfloat16 needs AVX-512 BF16 or AMX): the two facts that decide speed
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_conv_dtype": str(conv_dtype or torch.float32).removeprefix("torch."),
        "cpu_flags": cpu_flags(),
        "cores": usable_cores(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pyav": av.__version__,
        "libavcodec": ".".join(str(x) for x in av.library_versions.get("libavcodec", ())) or None,
        "ffmpeg": ffmpeg_version(),  # the executable the minterpolate peer runs, if any
        "os": f"{platform.system()} {platform.release()}",
        "retime": __version__,
        "commit": _git_commit(),
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
