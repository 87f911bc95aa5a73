"""Pass 2, the rendering: decoded frames streamed through a plan, synthesized frames made between pairs, every
output frame handed to the encoder in order, with a bounded window of source frames (:func:`_write_through`)."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np

from retime.errors import InputError
from retime.media.decode import DecodedFrame
from retime.media.encode import VideoWriter
from retime.pipeline._protocols import FrameInterpolator, Progress
from retime.pipeline._threads import QUEUE_FRAMES, _Prefetch, _Sink
from retime.plan import Copy, FixDropsPlan, Synth, UpsamplePlan


def _write_through(writer: VideoWriter, stamps: Callable[[int], tuple[int, int]], plan, source_factory,
                   interpolator: Callable[[], FrameInterpolator], progress: Progress) -> int:
    """Run pass 2: decode thread → render (this thread) → encode thread. Returns the peak window size."""
    def consume(item: tuple[int, Any]) -> None:
        j, frame = item
        pts, duration = stamps(j)
        if isinstance(frame, np.ndarray):
            writer.write_rgb(frame, pts, duration)
        else:
            writer.write(frame, pts, duration)

    decoder = _Prefetch(source_factory, QUEUE_FRAMES, "retime-decode")
    sink = _Sink(consume, QUEUE_FRAMES, "retime-encode")
    try:
        peak = _render(plan, decoder, interpolator, lambda j, frame: sink.put((j, frame)), progress)
        sink.finish()
    except BaseException:
        sink.abort()
        raise
    finally:
        decoder.close()
    return peak


def _render(plan: FixDropsPlan | UpsamplePlan, source: Iterable[DecodedFrame],
            interpolator: Callable[[], FrameInterpolator], emit: Callable[[int, Any], None],
            progress: Progress) -> int:
    """Stream decoded frames through ``plan``, calling ``emit(j, frame)`` for every output frame in order, where
    ``frame`` is the source :class:`av.VideoFrame` (a copy) or an (H, W, 3) uint8 RGB array (synthesized).

    Holds at most ``plan.max_lookahead`` source frames; returns the most it held.
    """
    frames = plan.frames
    total = len(frames)
    window: dict[int, DecodedFrame] = {}
    prepared: dict[int, Any] = {}
    synthesized: dict[int, np.ndarray] = {}
    decoded = iter(source)
    loaded = -1
    peak = 0
    engine: FrameInterpolator | None = None
    for j, op in enumerate(frames):
        highest = max(op.needs())
        while loaded < highest:
            item = next(decoded, None)
            if item is None:
                raise InputError(f"the video ended at frame {loaded + 1} in pass 2, but pass 1 decoded "
                                 f"{plan.n_frames if isinstance(plan, FixDropsPlan) else plan.n_source}; "
                                 f"did the file change?")
            loaded = item.index
            window[item.index] = item
        peak = max(peak, len(window))
        if isinstance(op, Copy):
            emit(j, window[op.source].frame)
        else:
            if j not in synthesized:
                if engine is None:
                    engine = interpolator()
                synthesized.update(_synthesize_group(engine, frames, j, window, prepared))
            emit(j, synthesized.pop(j))
        keep = plan.keep_from(j + 1)
        for index in [i for i in window if i < keep]:
            del window[index]
            prepared.pop(index, None)
        progress("render", j + 1, total)
    return peak


def _synthesize_group(engine: FrameInterpolator, frames: Sequence, j: int, window: dict[int, DecodedFrame],
                      prepared: dict[int, Any]) -> dict[int, np.ndarray]:
    """Synthesize output ``j`` and the following outputs between the same two source frames in one call."""
    op = frames[j]
    group = [j]
    while group[-1] + 1 < len(frames):
        nxt = frames[group[-1] + 1]
        if not (isinstance(nxt, Synth) and (nxt.left, nxt.right) == (op.left, op.right)):
            break
        group.append(group[-1] + 1)
    ts = [frames[k].t for k in group]
    left, right = _model_input(engine, window[op.left], prepared), _model_input(engine, window[op.right], prepared)
    outputs = engine.interpolate(left, right, ts)
    if len(outputs) != len(ts):
        raise RuntimeError(f"the interpolator returned {len(outputs)} frames for {len(ts)} timesteps")
    shape = window[op.left].rgb.shape
    result = {}
    for k, out in zip(group, outputs):
        out = np.asarray(out)
        if out.shape != shape or out.dtype != np.uint8:
            raise RuntimeError(f"the interpolator returned a {out.shape} {out.dtype} frame; expected {shape} uint8")
        result[k] = out
    return result


def _model_input(engine: FrameInterpolator, frame: DecodedFrame, prepared: dict[int, Any]) -> Any:
    """The frame as the engine takes it; engines with ``prepare`` (the real one) encode each frame once, which
    saves work when a frame is the right end of one pair and the left end of the next (upsampling)."""
    prepare = getattr(engine, "prepare", None)
    if prepare is None:
        return frame.rgb
    if frame.index not in prepared:
        prepared[frame.index] = prepare(frame.rgb)
    return prepared[frame.index]
