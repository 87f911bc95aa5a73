"""What the commands print: the progress bar and the summary on stderr, ``detect``'s table on stdout, and the
``--report`` file of ``detect``."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from retime.cli import _exit
from retime.cli._exit import _Console
from retime.errors import OutputError

class _FpsColumn(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:5.1f} fps", style="progress.data.speed")


class _Bar:
    """A Rich progress bar on stderr for pass 1 ("analysing") and pass 2 ("writing"); silent when not a terminal."""

    LABELS = {"analyse": "analysing", "render": "writing"}

    def __init__(self, enabled: bool) -> None:
        self.progress = None
        self.tasks: dict[str, Any] = {}
        if enabled and _exit.err.is_terminal:
            self.progress = Progress(TextColumn("{task.description:>9}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("frames"), _FpsColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                                     console=_exit.err, transient=True)

    def __enter__(self) -> _Bar:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if self.progress is None:
            return
        task = self.tasks.get(stage)
        if task is None:
            task = self.tasks[stage] = self.progress.add_task(self.LABELS.get(stage, stage), total=total)
        if done % 4 == 0 or (total is not None and done >= total):  # fewer redraw requests, same picture
            self.progress.update(task, completed=done, total=max(total or 0, done) or None)


def _check_report(path: Path | None, *, avoid: tuple[Path, ...] = (), overwrite: bool | None = False) -> None:
    """Reject a --report path that cannot work before any video is written (so a failing report never leaves a
    finished OUT behind an error exit). An existing file is replaced only when it is an earlier retime report or
    with ``overwrite`` (``-y``; ``None``: the command has no ``-y``)."""
    if path is None:
        return
    for other in avoid:
        if other is not None and path.resolve() == Path(other).resolve():
            raise OutputError(f"{path}: the report would overwrite a video; choose another --report path")
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give a report file name")
    if path.exists() and not overwrite and not _is_report(path):
        raise OutputError(f"{path}: exists and is not a retime report; choose another --report path"
                          f"{'' if overwrite is None else ' (or -y to replace it)'}")
    if not path.resolve().parent.is_dir():
        raise OutputError(f"{path}: cannot write the report: the folder {path.resolve().parent} does not exist")


def _is_report(path: Path) -> bool:
    """Whether ``path`` starts like the JSON reports retime writes (``{"retime": "<version>", ...``)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return head.replace(b" ", b"").replace(b"\n", b"").startswith(b'{"retime":"')


def _write_report(path: Path | None, data: dict, *, avoid: tuple[Path, ...] = (),
                  overwrite: bool | None = False) -> None:
    """Write ``data`` as JSON to ``path`` atomically (locked temp file + rename; ``detect``'s report: the video
    commands commit theirs with the video)."""
    if path is None:
        return
    _check_report(path, avoid=avoid, overwrite=overwrite)
    from retime.media.encode import write_atomically

    write_atomically(path, (json.dumps(data, indent=2) + "\n").encode())


def _duplicate_list(analysis, limit: int = 12) -> str:
    dups = analysis.duplicates()
    shown = ", ".join(f"{d['frame']} ({d['time']:.3f} s)" for d in dups[:limit])
    more = f", ... {len(dups) - limit} more" if len(dups) > limit else ""
    return shown + more


def _summary(result) -> None:
    a = result.analysis
    det = a.detection
    lines = [f"[bold]retime {result.command}[/] {escape(str(result.input))} -> {escape(str(result.output))}"]
    if det.duplicates:
        lines.append(f"  {len(det.duplicates)} duplicate frame(s): {_duplicate_list(a)}")
        if result.command == "upsample":
            lines.append("  [bold]not repaired[/]: upsample keeps duplicates as they are (each is shown twice as "
                         "long); run `retime fix-drops` first, then upsample its output")
    else:
        lines.append("  no duplicate frames found")
    kept = [r for r in a.plan.runs if r.action != "interpolate"]
    if kept and result.command == "fix-drops" and result.plan.mode == "fill":
        lines.append("  kept: " + "; ".join(f"frames {r.start}-{r.start + r.length - 1} ({r.action})" for r in kept))
    lines += [f"  {line}" for line in _timing_lines(a)]
    if a.plan.gaps:
        filled = sum(g.missing for g in a.plan.gaps if g.action == "interpolate")
        held = [g for g in a.plan.gaps if g.action != "interpolate"]
        lines.append(f"  timestamp gaps: {filled} missing frame(s) interpolated"
                     + ("; held: " + "; ".join(f"{g.missing} before frame {g.index} ({g.action})" for g in held)
                        if held else ""))
    if a.cadence is not None:
        lines.append(f"  {_cadence_line(a)}" + (f"; --cadence {result.plan.mode}" if result.command == "fix-drops"
                                                else ""))
    if det.cuts:
        lines.append(f"  scene cuts before frame(s): {', '.join(map(str, det.cuts[:12]))}")
    if result.model:
        m = result.model
        flips = {1: ", left-right mirror averaged", 2: ", both mirrors averaged"}.get(m.get("flips", 0), "")
        setting = f"{m['model']} at scale {m['scale']:g}{' with ensembling' if m['ensemble'] else ''}{flips}"
        if m["searched"]:
            tried = ", ".join(f"{t['model']} {t['scale']:g}{'+ens' if t['ensemble'] else ''} {t['psnr']:.2f} dB"
                              for t in m["trials"])
            setting += f" (rebuilt frames {', '.join(map(str, m['rebuilt_frames']))}: {tried})"
            if m.get("kept_default"):
                setting += "; the higher means were not consistent over these frames: the default is kept"
        elif m.get("not_searched"):
            setting += f" (no search: {m['not_searched']})"
        lines.append(f"  model ({m['quality']}): {setting}")
    fps = result.frames_written / result.seconds if result.seconds > 0 else 0.0
    device = f" on {result.device}" if result.device else ""
    lines.append(f"  {a.n_frames} frames in, {result.frames_written} written ({result.synthesized} synthesized, "
                 f"{result.encoder} {result.pix_fmt} at {result.out_rate} fps) in {result.seconds:.1f} s "
                 f"({fps:.1f} fps{device})")
    lines.extend(f"  note: {escape(note)}" for note in result.notes)
    for line in lines:
        _exit.err.print(line)


def _rate(rate) -> str:
    return f"{rate}" if rate.denominator == 1 else f"{float(rate):.3f} ({rate})"


def _timing_lines(analysis) -> list[str]:
    """One line on the timestamps: CFR, CFR with gaps, or irregular VFR (kept as it is)."""
    timing = analysis.timing
    if timing.kind == "cfr":
        return []
    if timing.kind == "vfr":
        return [f"timing: irregular VFR ({timing.on_grid:.0%} of the intervals on a {_rate(timing.rate)} fps grid): "
                f"timestamps kept as they are, no gap filled"]
    return [f"timing: {len(timing.gaps)} timestamp gap(s), {timing.missing} frame(s) missing at a nominal "
            f"{_rate(timing.rate)} fps"]


def _cadence_line(analysis) -> str:
    c = analysis.cadence
    return (f"cadence: a repeat every {c.period} frames from frame {c.slots[0]} ({c.hits} of {len(c.slots)} slots "
            f"found, regularity {c.regularity:.2f}): a {_rate(c.source_rate(analysis.timing.rate))} fps source "
            f"shown at {_rate(analysis.timing.rate)} fps")


def _print_timing(out: Console, analysis) -> None:
    for line in _timing_lines(analysis):
        out.print(line)
    gaps = analysis.timing.gaps
    if gaps:
        table = Table("gap before frame", "time (s)", "missing", "intervals", "action", box=None, pad_edge=False)
        for gap, action in zip(gaps, analysis.plan.gaps):
            table.add_row(str(gap.index), f"{float(gap.start):.3f}-{float(gap.end):.3f}", str(gap.missing),
                          f"{gap.intervals:.2f}", action.action)
        out.print(table)
    if analysis.cadence is None:
        return
    out.print(_cadence_line(analysis))
    modes = analysis.cadence_modes()
    if not modes:
        out.print("  with timestamp gaps only --cadence fill applies")
        return
    what = {"fill": "each repeat replaced in place (motion stays uneven around it)",
            "retime": "every frame at an even source position", "decimate": "the repeats dropped"}
    for mode, m in modes.items():
        default = " (default)" if mode == "fill" else ""
        out.print(f"  --cadence {mode}{default}: {m['frames_out']} frames at {_rate(Fraction(m['rate']))} fps, "
                  f"{m['synthesized']} synthesized: {what[mode]}")


def _print_analysis(analysis) -> None:
    # Off a terminal (a pipe, a file) nothing is wrapped, so each record stays on one line for line-based tools.
    out = _Console(highlight=False, markup=False, soft_wrap=True)
    if not out.is_terminal:
        out = _Console(highlight=False, markup=False, soft_wrap=True, width=100_000)
    info = analysis.info
    out.print(f"{info.path}: {analysis.n_frames} frames, {info.width}x{info.height}, {_rate(analysis.timing.rate)} "
              f"fps, {float(analysis.end_time):.3f} s")
    runs = analysis.plan.runs
    if runs:
        table = Table("frame", "time (s)", "score", "run", "action", box=None, pad_edge=False)
        for d in analysis.duplicates():
            run = next(r for r in runs if r.start <= d["frame"] < r.start + r.length)
            table.add_row(str(d["frame"]), f"{d['time']:.3f}", f"{d['score']:.3f}",
                          f"{run.start}-{run.start + run.length - 1}", d["action"])
        out.print(table)
    out.print(f"{len(analysis.detection.duplicates)} duplicate frame(s) in {len(runs)} run(s); "
              f"fix-drops would synthesize {analysis.plan.synthesized} frame(s)")
    cuts = analysis.detection.cut_details
    out.print(f"{len(cuts)} scene cut(s)" + (": " + ", ".join(f"before frame {c.index} ({analysis.time_of(c.index):.3f}"
                                                              f" s, score {c.score:.1f})" for c in cuts)
                                             if cuts else ""))
    _print_timing(out, analysis)


def _file_line(outcome) -> None:
    """A folder run: one line per file as it finishes."""
    what = {"done": f"done ({outcome.synthesized} synthesized, {outcome.seconds:.1f} s)" if outcome.seconds is not None
            else "done", "skipped": "already done", "failed": f"failed (exit {outcome.exit_code}): {outcome.error}"}
    _exit.err.print(f"  {escape(outcome.input)}: {escape(what[outcome.status])}")


def _batch_summary(result, *, quiet: bool) -> None:
    """A folder run's summary on stderr: counts, then each failure with its reason (also with --quiet)."""
    counts = f"{len(result.outcomes)} file(s): {result.count('done')} done, {result.count('skipped')} already done, " \
             f"{result.count('failed')} failed"
    if not quiet:
        _exit.err.print(f"[bold]retime {result.command}[/]: {counts}")
    elif result.failed:
        _exit.err.print(f"retime {result.command}: {counts}", markup=False)
    if quiet:
        for o in result.failed:
            _exit.err.print(f"  {o.input}: exit {o.exit_code}: {o.error}", markup=False)
