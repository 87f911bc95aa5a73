"""Process-wide settings for a program that runs the model: :func:`configure_process`.

They change the whole process (the C allocator, PyTorch's thread pool), so a program sets them once at start-up:
retime's CLI does for the commands that run the model, and a library user may call the same function. The library
itself (:class:`retime.interpolate.Interpolator`, the pipeline) never does. Imports no torch unless asked to set
its threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

__all__ = ["configure_process", "keep_freed_memory", "usable_cores"]


def configure_process(threads: int | None = None) -> None:
    """Set up this process for running the model: glibc keeps freed memory (:func:`keep_freed_memory`), and, when
    ``threads`` is given, PyTorch uses that many CPU threads (``None`` leaves its default, one per core).

    Call it once, at start-up, before the model runs; calling it again is harmless.
    """
    keep_freed_memory()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed blocks for reuse instead of handing them back to the kernel (Linux only).

    By default glibc maps large blocks freshly from the kernel and unmaps them on free, and trims the heap as soon
    as 128 kB are free at its top, so the network's large temporaries page-fault in again at every call. Raising
    the mmap threshold to its maximum (32 MiB) and the trim threshold to 128 MiB keeps those pages, and bounds what
    is kept; it is what running under jemalloc or tcmalloc does, as PyTorch's CPU performance guide recommends.
    What it gains and costs: docs/performance.md, "glibc keeps freed memory". Process-wide.

    Returns:
        ``True`` when the setting was applied (glibc found), else ``False`` (other C libraries: nothing changes).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 128 << 20))


def usable_cores() -> int:
    """CPU cores this process may run on (the affinity mask where the OS has one, else all of them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
