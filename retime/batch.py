"""Folders: run ``fix-drops`` or ``upsample`` on every video of a folder in a local process pool, with a manifest
that makes an interrupted batch resumable.

Each input ``IN_DIR/rel/name.ext`` becomes ``OUT_DIR/rel/name.ext`` (same relative name, so the same container).
The manifest, ``OUT_DIR/retime-manifest.json``, is rewritten atomically after every file: per input its status
(``done`` or ``failed``), exit code, the one-line reason of a failure, and where its report is
(``OUT_DIR/.retime-reports/rel/name.ext.json``, committed together with the video by the pipeline). A file whose
entry says ``done``, whose output exists and whose input is unchanged (size and modification time) is skipped; so
is one whose output and report exist from a run that was killed before it could write the manifest. Running the
same command again therefore redoes only what is not finished, or what this batch made from an input that has
changed since (that output is replaced; any other existing output is kept unless ``overwrite``).

The files run through :mod:`retime.executor`: a local process pool by default (``spawn``; each worker sets up the
process as the CLI does, with ``threads`` = cores // jobs, so workers x threads stays about the number of cores), or
a Ray cluster.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retime.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, OutputError, RetimeError, UsageError
from retime.executor import ExecutorSettings, TaskFailure, run_tasks

__all__ = ["MANIFEST", "VIDEO_GLOBS", "BatchResult", "FileOutcome", "find_inputs", "run_folder"]

#: The manifest's file name inside OUT_DIR.
MANIFEST = "retime-manifest.json"
#: Where the per-file reports go inside OUT_DIR.
REPORTS = ".retime-reports"
#: The default ``--glob``: the common video extensions (matched case-insensitively).
VIDEO_GLOBS = ("*.mp4", "*.mkv", "*.mov", "*.webm", "*.avi", "*.m4v", "*.mts", "*.m2ts", "*.ts", "*.flv", "*.wmv",
               "*.mpg", "*.mpeg", "*.3gp", "*.nut", "*.y4m")
SCHEMA = "retime-batch-1"


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one input: ``status`` ``done``, ``skipped`` (already done) or ``failed``, with the exit
    code the single-file command would have given and, for a failure, its one-line reason."""

    input: str
    output: str
    status: str
    exit_code: int
    error: str | None = None
    report: str | None = None
    synthesized: int | None = None
    seconds: float | None = None


@dataclass
class BatchResult:
    """All outcomes of a folder run, in input order (:attr:`failed`: those that failed; the CLI exits 6 then)."""

    command: str
    outcomes: list[FileOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def find_inputs(folder: Path, *, globs: Sequence[str] = VIDEO_GLOBS, recursive: bool = False,
                exclude: Path | None = None) -> list[Path]:
    """The files under ``folder`` matching any of ``globs`` (case-insensitive), sorted, relative to ``folder``.

    ``exclude``: a folder to leave out (OUT_DIR inside IN_DIR), so that outputs are never taken as inputs. With
    ``recursive``, a sub-folder holding a retime manifest (the OUT of an earlier folder run) is left out too.
    """
    folder = folder.resolve()
    patterns = [g.lower() for g in globs]
    found = []
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    skipped = [exclude.resolve()] if exclude is not None else []
    if recursive:
        skipped += [m.parent for m in folder.rglob(MANIFEST) if m.parent != folder]
    for path in candidates:
        if not path.is_file() or any(path.resolve().is_relative_to(s) for s in skipped):
            continue
        name = path.name.lower()
        if any(Path(name).match(p) for p in patterns):
            found.append(path.relative_to(folder))
    return sorted(found)


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) and data.get("schema") == SCHEMA else {}
    except (OSError, ValueError):
        return {}  # absent or unreadable: nothing is known to be done, every file is run (outputs are atomic)


def _write_manifest(path: Path, data: dict[str, Any]) -> None:
    from retime.media.encode import write_atomically

    write_atomically(path, (json.dumps(data, indent=1) + "\n").encode())


def _already_done(rel: str, source: Path, target: Path, report: Path, entry: dict | None) -> bool:
    if not target.is_file():
        return False
    if entry is not None and entry.get("status") == "done":
        return entry.get("input_stamp") == _stamp(source)
    # killed after the pipeline committed this file but before the manifest said so: its report says which input
    try:
        return json.loads(report.read_text()).get("input") == str(source)
    except (OSError, ValueError, AttributeError):
        return False


def _run_one(command: str, source: str, target: str, report: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """One file, in a worker process: the pipeline call of ``command``; errors become an exit code and a line."""
    from retime import pipeline

    run = pipeline.fix_drops if command == "fix-drops" else pipeline.upsample
    Path(report).parent.mkdir(parents=True, exist_ok=True)
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    try:
        result = run(source, target, report=report, **kwargs)
    except RetimeError as exc:
        return {"exit_code": exc.exit_code, "error": " ".join(str(exc).split())}
    except KeyboardInterrupt:
        return {"exit_code": EXIT_INTERRUPTED, "error": "interrupted; no output was written"}
    except Exception as exc:  # a bug in one file must not stop the others
        return {"exit_code": EXIT_INTERNAL, "error": f"internal error: {type(exc).__name__}: {exc}"}
    return {"exit_code": EXIT_OK, "synthesized": result.synthesized, "seconds": round(result.seconds, 3)}


def run_folder(command: str, input_dir: str | os.PathLike, output_dir: str | os.PathLike, *,
               jobs: int = 1, globs: Sequence[str] = VIDEO_GLOBS, recursive: bool = False,
               on_file: Callable[[FileOutcome], None] | None = None, executor: ExecutorSettings | None = None,
               **kwargs: Any) -> BatchResult:
    """Run ``command`` (``"fix-drops"`` or ``"upsample"``) on every matching video of ``input_dir``.

    Args:
        command: which pipeline call.
        input_dir, output_dir: folders; ``output_dir`` is created if missing and must not be ``input_dir``.
        jobs: worker processes (≥ 1); each gets ``max(1, cores // jobs)`` PyTorch threads. Ignored when
            ``executor`` is given (its ``jobs`` count).
        globs, recursive: which files are inputs (:func:`find_inputs`).
        on_file: called in the parent as each file finishes (or is skipped), in completion order.
        executor: where the files run (:class:`retime.executor.ExecutorSettings`: a local pool, or Ray); a worker
            that dies under a file runs it again, up to ``max_tries`` times.
        kwargs: the pipeline call's keyword arguments (``detection``, ``encode``, ``model``, ``device``,
            ``overwrite``, ``factor``/``fps``, ``cadence``, ...): picklable settings, no ``report``/``progress``.

    Returns:
        The :class:`BatchResult`, outcomes in input order.

    Raises:
        UsageError: bad ``jobs``, OUT is IN, OUT is a file, or no input matched.
        OutputError: OUT cannot be created.
        KeyboardInterrupt: the batch was interrupted (the manifest keeps what finished; workers remove their
            partial outputs).
    """
    if command not in ("fix-drops", "upsample"):
        raise UsageError(f"a folder can be given to fix-drops or upsample, not {command!r}")
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    executor = executor or ExecutorSettings(jobs=jobs)
    source_dir, target_dir = Path(input_dir), Path(output_dir)
    if (target_dir.exists() and not target_dir.is_dir()) or (
            not target_dir.exists() and any(Path(target_dir.name.lower()).match(g) for g in VIDEO_GLOBS)):
        raise UsageError(f"{target_dir}: IN is a folder, so OUT must be a folder too")
    if target_dir.resolve() == source_dir.resolve():
        raise UsageError(f"{target_dir}: OUT must be another folder than IN (inputs are never overwritten)")
    inside = target_dir.resolve().is_relative_to(source_dir.resolve())
    inputs = find_inputs(source_dir, globs=globs, recursive=recursive, exclude=target_dir if inside else None)
    if not inputs:
        raise UsageError(f"{source_dir}: no file matches {', '.join(globs)}" + ("" if recursive else
                                                                                 " (--recursive for sub-folders)"))
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{target_dir}: cannot create the output folder ({exc.strerror or exc})") from None
    manifest_path = target_dir / MANIFEST
    manifest = _read_manifest(manifest_path)
    entries: dict[str, Any] = manifest.get("files", {})
    manifest = {"schema": SCHEMA, "command": command, "files": entries}
    result = BatchResult(command)
    by_rel: dict[str, FileOutcome] = {}

    def record(outcome: FileOutcome, rel: str) -> None:
        by_rel[rel] = outcome
        if on_file is not None:
            on_file(outcome)

    todo = []
    for rel_path in inputs:
        rel = rel_path.as_posix()
        source, target = source_dir / rel_path, target_dir / rel_path
        report = target_dir / REPORTS / f"{rel}.json"
        if _already_done(rel, source, target, report, entries.get(rel)):
            entries[rel] = {**entries.get(rel, {}), "status": "done", "exit_code": EXIT_OK, "error": None,
                            "output": str(target), "report": str(report), "input_stamp": _stamp(source)}
            record(FileOutcome(str(source), str(target), "skipped", EXIT_OK, report=str(report)), rel)
        else:
            # an output this batch made from an input that has changed since is retime's own: it is replaced
            stale = (entries.get(rel) or {}).get("status") == "done" and target.is_file()
            todo.append((rel, source, target, report, stale))
    _write_manifest(manifest_path, manifest)

    def finished(key: tuple, done: dict[str, Any] | TaskFailure) -> None:
        rel, source, target, report = key
        if isinstance(done, TaskFailure):
            done = {"exit_code": EXIT_INTERNAL, "error": done.error}
        ok = done["exit_code"] == EXIT_OK
        outcome = FileOutcome(str(source), str(target), "done" if ok else "failed", done["exit_code"],
                              done.get("error"), str(report) if ok else None, done.get("synthesized"),
                              done.get("seconds"))
        entries[rel] = {"status": outcome.status, "exit_code": outcome.exit_code, "error": outcome.error,
                        "output": str(target), "report": outcome.report,
                        "input_stamp": _stamp(source) if source.exists() else None}
        _write_manifest(manifest_path, manifest)
        record(outcome, rel)

    # Stopped by Ctrl-C, a killed worker leaves no output at its path (outputs are staged until complete), and the
    # manifest already holds every file that finished.
    run_tasks(_run_one, {(rel, source, target, report): (command, str(source), str(target), str(report),
                                                        {**kwargs, "overwrite": True} if stale else kwargs)
                         for rel, source, target, report, stale in todo}, executor, on_done=finished)
    result.outcomes = [by_rel[p.as_posix()] for p in inputs]
    return result

