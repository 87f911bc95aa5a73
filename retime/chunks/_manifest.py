"""The chunk manifest: one plan file, written once by ``retime chunks plan``, and beside it a folder with one chunk
file and one done marker per finished chunk, each written by the worker that made it.

Many workers run at once, so none of them rewrites a shared file: a chunk file appears complete or not at all
(staged, then linked into place), and its done marker (``chunk-NNNNN.done.json``) is moved into place right after
it. A chunk counts as done only when its marker names this plan (``plan_id``) and its file has the size the marker
says; anything else (no marker, a marker of an older plan, a file cut short) is run again.

Layout, for ``--manifest job.json``::

    job.json                      the plan (schema ``retime-chunks-1``)
    job.chunks/chunk-00000.packets  the encoded packets of chunk 0 (retime.chunks._packets)
    job.chunks/chunk-00000.done.json
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from retime.chunks._split import Chunk
from retime.errors import InputError, UsageError
from retime.plan import Copy, Op, Synth

__all__ = ["SCHEMA", "ChunkPlan", "input_stamp"]

SCHEMA = "retime-chunks-1"


def input_stamp(path: str | Path) -> dict[str, int]:
    """Size (bytes) and modification time (ns) of the input: a chunk of a file that changed since the plan is
    refused."""
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _op_to_json(op: Op) -> Any:
    return op.source if isinstance(op, Copy) else [op.left, op.right, op.t]


def _op_from_json(data: Any) -> Op:
    return Copy(int(data)) if isinstance(data, int) else Synth(int(data[0]), int(data[1]), float(data[2]))


@dataclass
class ChunkPlan:
    """A plan file, read or about to be written: ``path`` and its JSON ``data``.

    ``data`` holds: ``command``, ``input`` (absolute), ``input_stamp``, ``output`` (absolute), ``overwrite``,
    ``encode`` (the chosen encoder, CRF, preset), ``device``, ``model`` (the settings every chunk uses: those the
    flow-scale search chose, or ``None``), ``time_base`` and ``rate`` of the output, ``source_pts`` (each source
    frame's PTS), ``frames`` (one op per output frame: a source index, or ``[left, right, t]``), ``pts`` and
    ``durations`` (each output frame's, in ``time_base`` ticks), ``chunks``, ``report`` (the ``--report`` JSON
    without what the chunks add) and ``plan_id`` (a hash of all of that).
    """

    path: Path
    data: dict[str, Any]

    # -- reading ---------------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> ChunkPlan:
        """Read the plan file ``path``.

        Raises:
            InputError: missing, unreadable or not a retime chunk plan.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise InputError(f"{path}: cannot read the chunk manifest: {exc.strerror or exc}") from None
        except ValueError:
            raise InputError(f"{path}: not a retime chunk manifest (not JSON)") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise InputError(f"{path}: not a retime chunk manifest (schema {SCHEMA} expected)")
        return cls(path, data)

    @property
    def chunks(self) -> list[Chunk]:
        return [Chunk.from_dict(c) for c in self.data["chunks"]]

    @property
    def frames(self) -> list[Op]:
        return [_op_from_json(f) for f in self.data["frames"]]

    @property
    def time_base(self) -> Fraction:
        return Fraction(self.data["time_base"])

    @property
    def rate(self) -> Fraction:
        return Fraction(self.data["rate"])

    @property
    def folder(self) -> Path:
        """The folder of the chunk files: ``job.chunks`` beside ``job.json``."""
        return self.path.with_name(self.path.stem + ".chunks")

    def chunk_file(self, index: int) -> Path:
        return self.folder / f"chunk-{index:05d}.packets"

    def marker(self, index: int) -> Path:
        return self.folder / f"chunk-{index:05d}.done.json"

    def done_marker(self, index: int) -> dict[str, Any] | None:
        """Chunk ``index``'s done marker when the chunk is done for this plan (see the module's rule), else None."""
        try:
            marker = json.loads(self.marker(index).read_text())
            size = self.chunk_file(index).stat().st_size
        except (OSError, ValueError):
            return None
        if not isinstance(marker, dict) or marker.get("plan_id") != self.data["plan_id"] or marker.get("bytes") != size:
            return None
        return marker

    def unfinished(self) -> list[int]:
        return [c.index for c in self.chunks if self.done_marker(c.index) is None]

    def check_index(self, index: int) -> Chunk:
        chunks = self.chunks
        if not 0 <= index < len(chunks):
            raise UsageError(f"--index must be 0 to {len(chunks) - 1} for {self.path} ({len(chunks)} chunks), "
                             f"got {index}")
        return chunks[index]

    def check_input(self) -> None:
        """Refuse an input that a worker cannot read or that changed since the plan.

        Raises:
            InputError: with one line naming the input.
        """
        source = Path(self.data["input"])
        if not os.access(source, os.R_OK):
            raise InputError(f"{source}: this worker cannot read the input (every worker must see the files at the "
                             f"same paths: docs/scale-out.md)")
        if input_stamp(source) != self.data["input_stamp"]:
            raise InputError(f"{source}: the input changed since `retime chunks plan` ({self.path}); plan again")

    # -- writing ---------------------------------------------------------------------------------------------------
    @staticmethod
    def encode_frames(frames: list[Op]) -> list[Any]:
        return [_op_to_json(op) for op in frames]

    def seal(self) -> None:
        """Set ``schema`` and ``plan_id`` (a hash of everything but the report, whose timings differ run to run)."""
        body = {k: v for k, v in self.data.items() if k not in ("plan_id", "report", "schema")}
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        self.data = {"schema": SCHEMA, "plan_id": digest, **body, "report": self.data.get("report")}

    def write(self) -> None:
        """Write the plan file atomically and make the chunk folder.

        Raises:
            OutputError: the folder is missing, not writable or full.
        """
        from retime.media.encode import write_atomically

        write_atomically(self.path, (json.dumps(self.data) + "\n").encode(), what="the chunk manifest")
        try:
            self.folder.mkdir(exist_ok=True)
        except OSError as exc:
            from retime.errors import OutputError

            raise OutputError(f"{self.folder}: cannot make the chunk folder: {exc.strerror or exc}") from None
