"""``retime chunks run``: one chunk rendered from the manifest, as pass 2 renders the whole video (the same
renderer, the same model settings), its encoded packets committed to the chunk's own file, then its done marker."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retime.chunks._manifest import ChunkPlan
from retime.chunks._packets import PacketFile
from retime.chunks._seek import frames_from
from retime.errors import EXIT_OK, RetimeError, UsageError
from retime.plan import Op
from retime.plan._ops import _Streaming

__all__ = ["render_chunk", "run_chunk"]

#: The engine a worker process built, by its settings: a worker that renders several chunks loads the model once.
_ENGINES: dict[str, Any] = {}


@dataclass(frozen=True)
class _Part(_Streaming):
    """The output frames of one chunk as a plan pass 2 can stream (source indices stay the whole video's)."""

    frames: tuple[Op, ...]
    n_source: int

    def _n_source(self) -> int:
        return self.n_source


def render_chunk(manifest: str | Path, index: int, *, interpolator: Any = None, progress=None) -> dict[str, Any]:
    """Make chunk ``index`` of the plan at ``manifest`` unless it is already done (idempotent).

    Returns:
        What was done, JSON-ready: ``index``, ``status`` (``done`` or ``skipped``), ``frames``, ``synthesized``,
        ``seconds``, ``device``, ``file``.

    Raises:
        InputError: the manifest or the input cannot be read here, or the input changed since the plan.
        OutputError: the chunk file cannot be written (folder missing, not writable, disk full).
        UsageError: a bad ``index``, or a plan made with an injected interpolator and none given.
        ModelError: the weights are missing here.
    """
    from retime.media.encode import EncodeSettings, VideoWriter, atomic_output
    from retime.media.probe import probe
    from retime.pipeline import _model
    from retime.pipeline._protocols import _no_progress
    from retime.pipeline._render import _write_through

    started = time.monotonic()
    sheet = ChunkPlan.load(manifest)
    chunk = sheet.check_index(index)
    done = sheet.done_marker(index)
    if done is not None:
        return {**done, "status": "skipped"}
    data = sheet.data
    if data["injected"] and interpolator is None:
        raise UsageError(f"{sheet.path} was planned with an injected interpolator; run its chunks with the same one")
    sheet.check_input()
    source = data["input"]
    frames = sheet.frames
    part = _Part(tuple(frames[chunk.first:chunk.end]), len(data["source_pts"]))
    if interpolator is not None:
        get_engine = _model._memo(lambda: interpolator)
    else:
        settings = _model.ModelSettings(**{k: (Path(v) if k == "weights" and v else v)
                                           for k, v in (data["model"] or {}).items()})
        key = json.dumps([data["device"], data["model"]], sort_keys=True)
        build = _model._default_interpolator(data["device"], settings)
        get_engine = _model._memo(lambda: _ENGINES[key] if key in _ENGINES else _ENGINES.setdefault(key, build()))
    pts, durations, first = data["pts"], data["durations"], chunk.first
    info = probe(source)
    encode = EncodeSettings(codec=data["encode"]["codec"], crf=data["encode"]["crf"], preset=data["encode"]["preset"])
    target = sheet.chunk_file(index)
    try:
        target.parent.mkdir(exist_ok=True)
    except OSError:
        pass  # atomic_output names the folder in its one-line error
    with atomic_output(target, overwrite=True, container=False) as staged:
        with open(staged.path, "wb") as file:
            packets = PacketFile(file, encode.codec)
            writer = VideoWriter(staged.path, info, settings=encode, time_base=sheet.time_base, rate=sheet.rate,
                                 copy_streams=False, label=data["output"], packet_sink=packets.write)
            try:
                peak = _write_through(writer, lambda j: (pts[first + j], durations[first + j]), part,
                                      lambda: frames_from(source, chunk.source, data["source_pts"]), get_engine,
                                      progress or _no_progress)
            except BaseException:
                writer.abort()
                raise
            writer.close()
        if packets.count != chunk.end - chunk.first:
            raise RuntimeError(f"chunk {index}: the encoder gave {packets.count} packets for "
                               f"{chunk.end - chunk.first} frames")
        marker = {"plan_id": data["plan_id"], "index": index, "frames": chunk.end - chunk.first,
                  "synthesized": part.synthesized, "bytes": os.fstat(staged.fd).st_size,
                  "seconds": round(time.monotonic() - started, 3), "peak_window": peak,
                  "device": _model._device_name(get_engine), "host": socket.gethostname(), "pid": os.getpid()}
        staged.attach(sheet.marker(index), (json.dumps(marker) + "\n").encode())
    return {**marker, "status": "done", "file": str(target)}


def run_chunk(manifest: str, index: int, interpolator: Any = None) -> dict[str, Any]:
    """:func:`render_chunk` as an executor task: a RetimeError comes back as a value (``exit_code``, ``error``),
    final, while anything else raised (or a worker that dies) is a failed try that the executor runs again."""
    try:
        return render_chunk(manifest, index, interpolator=interpolator)
    except RetimeError as exc:
        return {"index": index, "status": "failed", "exit_code": exc.exit_code, "error": " ".join(str(exc).split())}
    except KeyboardInterrupt:
        raise


def succeeded(outcome: dict[str, Any]) -> bool:
    return outcome.get("status") in ("done", "skipped") and outcome.get("exit_code", EXIT_OK) == EXIT_OK
