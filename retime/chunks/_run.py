"""``fix-drops``/``upsample --chunk-seconds S``: one long video as plan → chunks in the executor (a local pool, or
Ray) → join, in one command, with the output and its report written atomically as an unchunked run writes them."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from retime.chunks._join import ChunksNotDone, join_chunks
from retime.chunks._plan import plan_chunks
from retime.chunks._render import run_chunk, succeeded
from retime.executor import ExecutorSettings, TaskFailure, run_tasks
from retime.pipeline import RunResult

__all__ = ["run_chunked", "work_folder"]


def work_folder(output: str | Path) -> Path:
    """Where a one-command chunked run keeps its manifest and chunks: ``.NAME.retime-chunks`` beside OUT (so on
    the same file system), kept when the run stops early, so that running it again redoes only unfinished chunks."""
    output = Path(output).resolve()
    return output.with_name(f".{output.name}.retime-chunks")


def run_chunked(command: str, input: str | Path, output: str | Path, *, chunk_seconds: float,
                executor: ExecutorSettings = ExecutorSettings(), report: str | Path | None = None, progress=None,
                interpolator: Any = None, **kwargs: Any) -> RunResult:
    """Run ``command`` on ``input`` in chunks of about ``chunk_seconds`` (seconds of output) and join them.

    The plan (pass 1, the plan, the model's settings) is made once for the whole video; each chunk then renders
    its part in a task of ``executor``; a chunk whose task raises or whose worker dies runs again up to
    ``executor.max_tries`` times. The output equals the unchunked run's (frames, PTS, other streams; bit-exact
    with a lossless codec); with a lossy codec each chunk starts with a keyframe.

    Args:
        kwargs: as :func:`retime.fix_drops` / :func:`retime.upsample` (``interpolator`` must be picklable).

    Returns:
        The :class:`RunResult`; its report (``report``) has a ``chunks`` section.

    Raises:
        ChunksNotDone: a chunk failed on every try (exit 6; a rerun of the same command resumes).
        and whatever the command raises (InputError, OutputError, ModelError, UsageError).
    """
    started = time.monotonic()
    folder = work_folder(output)
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        from retime.errors import OutputError

        raise OutputError(f"{output}: cannot make the chunk folder {folder}: {exc.strerror or exc}") from None
    try:
        made = plan_chunks(command, input, output, folder / "plan.json", chunk_seconds=chunk_seconds,
                           interpolator=interpolator, progress=progress, **kwargs)
    except BaseException:
        with contextlib.suppress(OSError):
            folder.rmdir()  # refused before any chunk (OUT exists, bad input): leave nothing beside OUT
        raise
    sheet = made.manifest
    todo = sheet.unfinished()
    total = len(sheet.data["frames"])
    failed: dict[int, str] = {}
    peaks: list[int] = []
    rendered = [sum(c.end - c.first for c in sheet.chunks if c.index not in todo)]

    def finished(index: int, outcome: dict[str, Any] | TaskFailure) -> None:
        if isinstance(outcome, TaskFailure):
            failed[index] = f"{outcome.error} ({outcome.tries} tries)"
            return
        if not succeeded(outcome):
            failed[index] = f"exit {outcome.get('exit_code')}: {outcome.get('error')}"
            return
        peaks.append(outcome.get("peak_window", 0))
        rendered[0] += outcome.get("frames", 0)
        if progress is not None:
            progress("render", rendered[0], total)

    run_tasks(run_chunk, {i: (str(sheet.path), i, interpolator) for i in todo}, executor, on_done=finished)
    if failed:
        first = min(failed)
        raise ChunksNotDone(f"{len(failed)} of {len(sheet.chunks)} chunks failed; chunk {first}: {failed[first]} "
                            f"(run the same command again to redo only those)")
    joined = join_chunks(sheet.path, report=None if report is None else report)
    _remove(folder, sheet)
    return RunResult(command=command, input=Path(input), output=Path(output), analysis=made.analysis, plan=made.plan,
                     frames_written=joined["frames_out"], synthesized=made.plan.synthesized,
                     seconds=time.monotonic() - started, encoder=made.encoder, pix_fmt=made.pix_fmt,
                     out_rate=sheet.rate, device=joined["device"], peak_window=max(peaks, default=0),
                     model=made.tuning, notes=joined["notes"],
                     cadence_mode=kwargs.get("cadence", "fill") if command == "fix-drops" else None)


def _remove(folder: Path, sheet) -> None:
    """Remove the work folder: only the files this run made there (never a tree of unknown content)."""
    for chunk in sheet.chunks:
        for path in (sheet.chunk_file(chunk.index), sheet.marker(chunk.index)):
            with contextlib.suppress(OSError):
                path.unlink()
    for path in (sheet.folder, sheet.path):
        with contextlib.suppress(OSError):
            path.rmdir() if path.is_dir() else path.unlink()
    with contextlib.suppress(OSError):
        os.rmdir(folder)
