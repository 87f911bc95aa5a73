"""``retime chunks plan``: pass 1, the plan and the model's settings, made once for the whole video by the
pipeline itself (its ``planned`` hook), then cut into chunks and written to the manifest."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retime.chunks._manifest import ChunkPlan, input_stamp
from retime.chunks._split import CHUNK_SECONDS, keyframes, split
from retime.defaults import DEFAULTS
from retime.errors import UsageError
from retime.media.encode import EncodeSettings
from retime.pipeline import ModelSettings, RunResult

__all__ = ["Planned", "plan_chunks"]


@dataclass
class Planned:
    """What :func:`plan_chunks` made: the manifest, and (for a run in this process) the objects the summary shows."""

    manifest: ChunkPlan
    analysis: Any
    plan: Any
    tuning: dict[str, Any] | None
    encoder: str
    pix_fmt: str
    notes: list[str]
    seconds: float


class _Stop(Exception):
    """Raised by the hook once the plan is saved: the pipeline then stops, leaving nothing at OUT."""


def _worker_model(model: ModelSettings | None, tuning: dict[str, Any] | None) -> dict[str, Any] | None:
    """The model settings every chunk uses: the user's, with what the search chose fixed (nothing left to search)."""
    if tuning is None:
        return None
    model = model or ModelSettings()
    fixed = dataclasses.replace(model, model=tuning["model"], scale=tuning["scale"], ensemble=tuning["ensemble"],
                                flips=tuning["flips"])
    return {f.name: (str(v) if isinstance(v, Path) else v) for f in dataclasses.fields(fixed)
            for v in [getattr(fixed, f.name)]}


def plan_chunks(command: str, input: str | Path, output: str | Path, manifest: str | Path, *,
                chunk_seconds: float = CHUNK_SECONDS, encode: EncodeSettings | None = None,
                model: ModelSettings | None = None, device: str = DEFAULTS.device, overwrite: bool = False,
                interpolator: Any = None, cadence: str = "fill", progress=None, **kwargs: Any) -> Planned:
    """Analyse ``input`` as ``command`` (``"fix-drops"`` or ``"upsample"``) would, and write the chunk manifest.

    Args:
        manifest: the plan file to write (its chunk folder goes beside it, see :mod:`retime.chunks._manifest`).
        chunk_seconds: about how long each chunk is (seconds of output, > 0).
        interpolator: an injected interpolator (tests): the plan then records none, and each chunk must be given
            the same one.
        other arguments: as :func:`retime.fix_drops` / :func:`retime.upsample` (``kwargs``: ``detection``,
            ``timing``, ``factor``, ``fps``).

    Returns:
        The :class:`Planned` run.

    Raises:
        UsageError: bad ``chunk_seconds``; and whatever the command raises before pass 2 (InputError, OutputError,
            ModelError, UsageError), with nothing written.
    """
    from retime import pipeline

    if not (isinstance(chunk_seconds, (int, float)) and math.isfinite(chunk_seconds) and chunk_seconds > 0):
        raise UsageError(f"--chunk-seconds must be a positive number of seconds, got {chunk_seconds}")
    if command not in ("fix-drops", "upsample"):
        raise UsageError(f"chunks are planned for fix-drops or upsample, not {command!r}")
    started = time.monotonic()
    encode = encode or EncodeSettings()
    input, output, manifest = Path(input).resolve(), Path(output).resolve(), Path(manifest).resolve()
    made: dict[str, Planned] = {}

    def planned(*, analysis, output: Any, tuning, writer) -> None:
        plan = output.plan
        stamps = [output.stamps(j) for j in range(len(plan.frames))]
        rate = output.rate
        cuts = analysis.detection.cuts
        keep = [plan.keep_from(j) for j in range(len(plan.frames))]
        chunks = split(plan.frames, keep, max(1, round(chunk_seconds * rate)), cuts,
                       keyframes(input, analysis.pts))
        result = RunResult(command=command, input=input, output=out_path, analysis=analysis, plan=plan,
                           frames_written=len(plan.frames), synthesized=plan.synthesized,
                           seconds=time.monotonic() - started, encoder=writer.encoder, pix_fmt=writer.pix_fmt,
                           out_rate=rate, model=tuning, notes=list(writer.notes),
                           cadence_mode=cadence if command == "fix-drops" else None)
        data = {"command": command, "retime": _version(), "input": str(input), "input_stamp": input_stamp(input),
                "output": str(out_path), "overwrite": overwrite,
                "encode": {"codec": writer.encoder, "crf": encode.crf, "preset": encode.preset},
                "device": device, "model": _worker_model(model, tuning), "injected": interpolator is not None,
                "time_base": str(output.time_base), "rate": str(rate), "chunk_seconds": chunk_seconds,
                "source_pts": list(analysis.pts), "frames": ChunkPlan.encode_frames(list(plan.frames)),
                "pts": [p for p, _ in stamps], "durations": [d for _, d in stamps],
                "chunks": [c.to_dict() for c in chunks], "report": result.to_dict()}
        sheet = ChunkPlan(manifest, data)
        sheet.seal()
        sheet.write()
        made["run"] = Planned(sheet, analysis, plan, tuning, writer.encoder, writer.pix_fmt, list(writer.notes),
                              time.monotonic() - started)
        raise _Stop

    out_path = output
    run = pipeline.fix_drops if command == "fix-drops" else pipeline.upsample
    extra = {"cadence": cadence} if command == "fix-drops" else {}
    try:
        run(input, output, encode=encode, model=model, device=device, overwrite=overwrite,
            interpolator=interpolator, progress=progress, planned=planned, **extra, **kwargs)
    except _Stop:
        return made["run"]
    raise AssertionError("the pipeline rendered instead of stopping after the plan")  # pragma: no cover


def _version() -> str:
    from retime import __version__

    return __version__
