"""A chunk's source frames: decoding starts at the keyframe at or before the chunk's first source frame
(``container.seek``) and goes forward, so a chunk of an hour-long video costs its own length, not the hour before
it."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av

from retime.errors import InputError
from retime.media.decode import DecodedFrame, iter_frames
from retime.media.probe import open_input, stream_time_base

__all__ = ["frames_from"]

log = logging.getLogger(__name__)


def frames_from(path: str | Path, first: int, source_pts: Sequence[int]) -> Iterator[DecodedFrame]:
    """Yield the decoded frames ``first, first + 1, ...`` of ``path``'s video, indexed as pass 1 indexed them.

    ``source_pts``: each source frame's PTS as pass 1 read it (the plan's). The decoder seeks to the keyframe at or
    before frame ``first`` and the frames before ``first`` are dropped; where the seek cannot be matched to pass
    1's frames (frames without a PTS, a seek that lands after the frame), it decodes from the start instead (slower,
    same frames), and says so in the log.

    Raises:
        InputError: the file cannot be opened or decoding fails.
    """
    path = Path(path)
    if first > 0:
        seeking = _seek(path, first, source_pts)
        try:
            head = next(seeking, None)
        except _NoMatch as exc:
            head = None
            log.warning("%s: cannot start chunk decoding at frame %d by seeking (%s); decoding from the start",
                        path, first, exc)
        if head is not None:
            yield head
            yield from seeking
            return
    for frame in iter_frames(path):
        if frame.index >= first:
            yield frame


class _NoMatch(Exception):
    pass


def _seek(path: Path, first: int, source_pts: Sequence[int]) -> Iterator[DecodedFrame]:
    index_of = {p: i for i, p in enumerate(source_pts)}
    with open_input(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # as pass 2: frame and slice threads
        time_base = stream_time_base(stream)
        try:
            container.seek(source_pts[first], stream=stream, backward=True, any_frame=False)
            frames = container.decode(stream)
            index = None
            for frame in frames:
                if index is None:  # before the chunk: match the frame to pass 1's by its PTS
                    found = index_of.get(frame.pts) if frame.pts is not None else None
                    if found is None or found > first:
                        raise _NoMatch(f"the seek landed on PTS {frame.pts}, not at or before frame {first}")
                    if found < first:
                        continue
                    index = first
                elif index >= len(source_pts):
                    return
                pts = source_pts[index]  # pass 1's, which fills in what the container lacks
                yield DecodedFrame(index=index, pts=pts, time=Fraction(pts) * time_base,
                                   duration=frame.duration or None, frame=frame)
                index += 1
        except av.FFmpegError as exc:
            raise InputError(f"{path}: decoding failed after seeking to frame {first}: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
