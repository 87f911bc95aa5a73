"""Where a video is cut into chunks: at scene cuts (nothing is interpolated across one anyway) or, inside a long
scene, at keyframes (a chunk then starts decoding where the file lets it seek), about ``chunk_seconds`` apart.

A chunk is a run of output frames ``[first, end)``. It may start only at an output frame that copies source frame
``s`` when no later output frame needs a source frame before ``s``: the chunk then decodes from ``s`` on, and the
chunk before it owns every frame synthesized between its last source frame and ``s`` (it decodes ``s`` too).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from retime.defaults import DEFAULTS
from retime.media.probe import open_input
from retime.plan import Copy

__all__ = ["CHUNK_SECONDS", "Chunk", "keyframes", "split"]

#: ``retime chunks plan``'s default chunk length (seconds of output; the reason is in retime.defaults).
CHUNK_SECONDS = DEFAULTS.chunk_seconds


@dataclass(frozen=True)
class Chunk:
    """One chunk: output frames ``first`` to ``end - 1``, which need source frames ``source`` to ``last_source``
    (decoding starts at the keyframe at or before ``source``); ``at`` says why it starts there: ``"start"``,
    ``"cut"`` (a scene cut), ``"keyframe"`` or ``"frame"`` (no cut or keyframe was near)."""

    index: int
    first: int
    end: int
    source: int
    last_source: int
    at: str

    def to_dict(self) -> dict:
        return {"index": self.index, "first": self.first, "end": self.end, "source": self.source,
                "last_source": self.last_source, "at": self.at}

    @classmethod
    def from_dict(cls, data: dict) -> Chunk:
        return cls(int(data["index"]), int(data["first"]), int(data["end"]), int(data["source"]),
                   int(data["last_source"]), str(data["at"]))


def keyframes(path: str | Path, source_pts: Sequence[int]) -> set[int]:
    """Source frames (indices) whose packets are keyframes: the container's index, read by demuxing only (no
    decoding), so it costs little even for an hour of video. Packets whose PTS pass 1 did not see are ignored.

    Raises:
        InputError: the file cannot be opened (as :func:`retime.media.probe.open_input`).
    """
    index_of = {p: i for i, p in enumerate(source_pts)}
    found = set()
    with open_input(path) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.is_keyframe and packet.pts is not None and packet.pts in index_of:
                found.add(index_of[packet.pts])
    return found


def split(frames: Sequence, keep_from: Sequence[int], length: int, cuts: Collection[int],
          keys: Collection[int]) -> list[Chunk]:
    """Cut output frames ``frames`` (plan ops) into chunks of about ``length`` output frames.

    Args:
        frames: the plan's ops, in output order.
        keep_from: ``keep_from[j]``: the lowest source frame that outputs ``j, j + 1, ...`` need.
        length: the target chunk length (output frames, ≥ 1).
        cuts: source frames that start a new shot; keys: source frames that are keyframes.

    Each chunk boundary is the allowed start nearest to the target among those within half a chunk of it:
    a scene cut if there is one, else a keyframe, else any allowed frame; the last chunk takes the rest when
    less than one and a half chunks remain. One chunk when the video is shorter than that.
    """
    n = len(frames)
    allowed = [j for j in range(1, n)
               if isinstance(frames[j], Copy) and keep_from[j] == frames[j].source]
    cuts, keys = set(cuts), set(keys)
    starts, reasons = [0], ["start"]
    pos = 0
    while n - starts[-1] >= length * 3 // 2 + 1:
        j0 = starts[-1]
        target, low, high = j0 + length, j0 + max(1, length // 2), min(j0 + length * 3 // 2, n - max(1, length // 2))
        while pos < len(allowed) and allowed[pos] < low:
            pos += 1
        window = []
        for j in allowed[pos:]:
            if j > high:
                break
            window.append(j)
        pick = None
        for reason, pool in (("cut", [j for j in window if frames[j].source in cuts]),
                             ("keyframe", [j for j in window if frames[j].source in keys]), ("frame", window)):
            if pool:
                pick = min(pool, key=lambda j: (abs(j - target), j)), reason
                break
        if pick is None:
            later = next((j for j in allowed[pos:] if j > high and n - j > length // 2), None)
            if later is None:
                break
            pick = later, "frame"
        starts.append(pick[0])
        reasons.append(pick[1])
    chunks = []
    for k, (first, why) in enumerate(zip(starts, reasons)):
        end = starts[k + 1] if k + 1 < len(starts) else n
        needed = [s for op in frames[first:end] for s in op.needs()]
        chunks.append(Chunk(k, first, end, keep_from[first], max(needed), why))
    return chunks
