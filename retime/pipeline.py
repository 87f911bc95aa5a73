"""The three things retime does — :func:`analyse`, :func:`fix_drops`, :func:`upsample` — from file to file.

Two passes, memory independent of the video's length:

1. **Analysis**: decode grey frames (:func:`retime.media.decode.iter_luma`), score each consecutive pair
   (:func:`retime.detect.frame_difference`), keep only the scores and the timestamps, then detect and plan.
2. **Rendering**: decode full frames again and stream them through the plan, holding a window of at most
   ``plan.max_lookahead`` source frames. A decode thread feeds a bounded queue, the main thread interpolates, an
   encode thread writes; the queues are small, so memory stays bounded.

Copied frames are re-encoded from the very pixels the decoder produced (native pixel format, no RGB round trip),
so with a lossless codec they are bit-exact. Synthesized frames come from an interpolator — any object with
``interpolate(frame0, frame1, ts) -> list[np.ndarray]`` on (H, W, 3) uint8 RGB arrays; the real
:class:`retime.interpolate.Interpolator` is built (and torch imported) only when a plan synthesizes something and
none was injected.

Output goes to an unnamed (or, where the file system has none, a hidden temporary) file in the target's folder and
gets its name, together with the ``--report``, only when complete (:func:`retime.media.encode.atomic_output`).
"""

from __future__ import annotations

import json
import dataclasses
import math
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Container, Iterable, Iterator, Protocol, Sequence

import numpy as np

from retime import __version__
from retime.defaults import DEFAULTS
from retime.detect import Detection, DetectionSettings, colour_change, colour_histogram, detect, frame_difference
from retime.errors import InputError, UsageError

#: The environment variable that names a user's checkpoint (as ``retime.interpolate.weights.WEIGHTS_ENV``; not
#: imported from there, which would load torch before anything is synthesized).
WEIGHTS_ENV = "RETIME_WEIGHTS"
from retime.media.decode import DecodedFrame, iter_frames, iter_luma
from retime.media.encode import EncodeSettings, VideoWriter, atomic_output, check_output_path
from retime.media.probe import VideoInfo, probe
from retime.plan import (CADENCE_MODES, KEEP_HOLD, Copy, FixDropsPlan, Synth, UpsamplePlan, plan_cadence,
                         plan_fix_drops, plan_upsample)
from retime.timing import Cadence, Timing, TimingSettings, analyse_timing, find_cadence

__all__ = [
    "Analysis",
    "FrameInterpolator",
    "Progress",
    "RunResult",
    "analyse",
    "fix_drops",
    "parse_rate",
    "snap_times",
    "upsample",
    "upsample_rate",
]

#: Decoded frames waiting between the decode thread and the renderer, and rendered frames waiting for the encoder.
#: Small: each is a full frame (a few MB at 1080p; a decoded one is held twice, as the frame and its RGB array). 3 keeps
#: both threads busy: fix-drops on a 100 s 320x240 clip (decode and encode bound) took 22.4-22.5 s against 21.8-22.3
#: with 8, and on the 720p clip 11.1 s and 779 MiB against 12.0 s and 811 MiB (docs/performance.md, change 22).
QUEUE_FRAMES = 3
#: Longer side of the RGB thumbnail pass 1 takes each frame's colour histogram from (pixels): a cut candidate is
#: confirmed by its colour change (retime.detect.colour_change), which needs no detail, only enough pixels (about
#: 5000 at 16:9) that a histogram of 512 colours is stable.
THUMBNAIL = 96


class FrameInterpolator(Protocol):
    """What the pipeline needs from an interpolator (the real one is :class:`retime.interpolate.Interpolator`)."""

    def interpolate(self, frame0: np.ndarray, frame1: np.ndarray, ts: Sequence[float]) -> list[np.ndarray]:
        """One (H, W, 3) uint8 RGB frame per t in ``ts`` (0 < t < 1) between two (H, W, 3) uint8 RGB frames."""
        ...


#: ``progress(stage, done, total)``: stage is ``"analyse"`` (pass 1) or ``"render"`` (pass 2); ``done`` frames so
#: far; ``total`` the expected count (``None`` when unknown). Called from the calling thread.
Progress = Callable[[str, int, "int | None"], None]


def _no_progress(stage: str, done: int, total: int | None) -> None:
    pass


# --- pass 1: analysis -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Analysis:
    """Pass 1's result: per-frame timestamps and scores, what was detected, and the fix-drops plan.

    Attributes:
        info: the input's facts.
        pts: each frame's PTS in ``info.time_base`` units, in decode (presentation) order.
        durations: each frame's duration in ``info.time_base`` units (from the container, else the gap to the
            next frame; the last frame's falls back to one frame at the average rate).
        scores: ``scores[i]`` = mean absolute grey-level difference of frames i and i + 1 (grey levels).
        detection: duplicates, runs, freezes, scene cuts.
        plan: the fix-drops plan for this detection (``--cadence fill``: repeats and timestamp gaps repaired in
            place).
        timing: nominal rate, regularity and timestamp gaps (:func:`retime.timing.analyse_timing`).
        cadence: the repeat cadence, if the single repeats fall on one (:func:`retime.timing.find_cadence`).
        colours: ``colours[i]`` = colour change of frames i and i + 1 (``retime.detect.colour_change``, in [0, 1]).
        pictures: the RGB frames kept for choosing the model's settings (:func:`tuning_samples`).
    """

    info: VideoInfo
    pts: tuple[int, ...]
    durations: tuple[int, ...]
    scores: tuple[float, ...]
    detection: Detection
    plan: FixDropsPlan
    timing: Timing
    cadence: Cadence | None = None
    colours: tuple[float, ...] = ()
    #: RGB pictures of the frames asked for with ``keep_rgb`` (index -> (H, W, 3) uint8); not part of the JSON.
    pictures: dict[int, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    def cadence_plan(self, mode: str) -> FixDropsPlan:
        """The fix-drops plan for ``--cadence mode`` (``"fill"``, ``"retime"`` or ``"decimate"``).

        Raises:
            UsageError: an unknown mode; ``retime``/``decimate`` on a video without a cadence or with
                timestamp gaps.
        """
        if mode not in CADENCE_MODES:
            raise UsageError(f"--cadence must be one of {', '.join(CADENCE_MODES)}, got {mode!r}")
        if mode == "fill":
            return self.plan
        if self.cadence is None:
            raise UsageError(f"--cadence {mode}: {self.info.path} has no regular repeat cadence "
                             f"({len(self.detection.duplicates)} duplicate frame(s), not on a regular pattern); "
                             f"use --cadence fill (see `retime detect`)")
        if self.timing.gaps:
            raise UsageError(f"--cadence {mode}: {self.info.path} also has {len(self.timing.gaps)} timestamp "
                             f"gap(s); only --cadence fill repairs both")
        return plan_cadence(self.n_frames, self.detection, self.cadence, mode, self.timing.rate)

    @property
    def n_frames(self) -> int:
        return len(self.pts)

    @property
    def times(self) -> list[Fraction]:
        """Each frame's presentation time (seconds, exact)."""
        return [p * self.info.time_base for p in self.pts]

    @property
    def end_time(self) -> Fraction:
        """End of the video: the last frame's time plus its duration (seconds)."""
        return (self.pts[-1] + self.durations[-1]) * self.info.time_base

    def time_of(self, index: int) -> float:
        """Presentation time of frame ``index`` in seconds (a float, for people and JSON)."""
        return float(self.pts[index] * self.info.time_base)

    def duplicates(self) -> list[dict[str, Any]]:
        """One entry per duplicate frame: index, time (s), score (grey levels) and what fix-drops does with it."""
        action = {}
        for run in self.plan.runs:
            for i in range(run.start, run.start + run.length):
                action[i] = run.action
        return [{"frame": i, "time": round(self.time_of(i), 6), "score": round(self.scores[i - 1], 4),
                 "action": action.get(i, "interpolate")} for i in self.detection.duplicates]

    def cadence_modes(self) -> dict[str, dict[str, Any]]:
        """What each ``--cadence`` mode would do: frames out, synthesized, rate (empty without a cadence)."""
        if self.cadence is None or self.timing.gaps:
            return {}
        out = {}
        for mode in CADENCE_MODES:
            plan = self.cadence_plan(mode)
            out[mode] = {"frames_out": len(plan.frames), "synthesized": plan.synthesized,
                         "rate": str(plan.out_rate or self.timing.rate)}
        return out

    def to_dict(self) -> dict[str, Any]:
        """Everything pass 1 found, JSON-ready (the schema of ``retime detect --json``)."""
        det = self.detection
        cadence = None
        if self.cadence is not None:
            cadence = dict(self.cadence.to_dict(self.timing.rate), modes=self.cadence_modes(),
                           times=[round(self.time_of(i), 6) for i in self.cadence.slots[:50]])
        return {
            "retime": __version__,
            "input": self.info.to_dict(),
            "frames": self.n_frames,
            "duration": float(self.end_time - self.pts[0] * self.info.time_base),
            "timing": self.timing.to_dict(),
            "gaps": [dict(g.to_dict(), action=a.action) for g, a in zip(self.timing.gaps, self.plan.gaps)],
            "cadence": cadence,
            "duplicates": self.duplicates(),
            "runs": [dict(run.to_dict(), time=round(self.time_of(run.start), 6)) for run in self.plan.runs],
            "freezes": [{"frame": r.start, "length": r.length, "time": round(self.time_of(r.start), 6)}
                        for r in det.freezes],
            "cuts": [{"frame": c.index, "time": round(self.time_of(c.index), 6), "score": round(c.score, 4),
                      "reason": c.reason} for c in det.cut_details],
            "fast_motion": [{"frame": c.index, "time": round(self.time_of(c.index), 6), "score": round(c.score, 4),
                             "colour": round(c.colour, 4), "reason": c.reason} for c in det.fast_motion],
            "settings": det.settings.to_dict(),
            "scores": [round(s, 4) for s in self.scores],
            "colours": [round(c, 4) for c in self.colours],
            "plan": self.plan.to_dict(),
        }


def analyse(path: str | Path, settings: DetectionSettings | None = None, *, info: VideoInfo | None = None,
            progress: Progress | None = None, keep_rgb: Container[int] = (),
            timing: TimingSettings | None = None) -> Analysis:
    """Pass 1: decode ``path`` as grey frames, score consecutive frames, detect duplicates and cuts, analyse the
    timestamps (nominal rate, gaps) and the repeats (cadence), plan fix-drops.

    Each pair also gets the colour change of its thumbnails' histograms, which tells a cut from fast motion.
    Memory: one grey frame pair, one histogram pair, plus a few numbers per frame, and the RGB pictures of the
    frames in ``keep_rgb``.

    Raises:
        InputError: the file is missing, not a video, has no video stream, is corrupted or truncated, or has fewer
            than 2 frames.
    """
    settings = settings or DetectionSettings()
    info = info or probe(path)
    progress = progress or _no_progress
    expected = _expected_frames(info)
    pts: list[int] = []
    durations: list[int | None] = []
    scores: list[float] = []
    colours: list[float] = []
    previous: np.ndarray | None = None
    previous_histogram: np.ndarray | None = None
    pictures: dict[int, np.ndarray] = {}
    for frame in iter_luma(path, thumbnail=THUMBNAIL, keep_rgb=keep_rgb):
        if frame.rgb is not None:
            pictures[frame.index] = frame.rgb
        histogram = colour_histogram(frame.thumb)
        if previous is not None:
            if frame.luma.shape != previous.shape:
                raise InputError(f"{path}: the frame size changes at frame {frame.index} "
                                 f"({previous.shape[1]}x{previous.shape[0]} to "
                                 f"{frame.luma.shape[1]}x{frame.luma.shape[0]}); retime needs one size")
            scores.append(frame_difference(previous, frame.luma))
            colours.append(colour_change(previous_histogram, histogram))
        previous, previous_histogram = frame.luma, histogram
        pts.append(frame.pts)
        durations.append(frame.duration)
        progress("analyse", len(pts), expected)
    if len(pts) < 2:
        raise InputError(f"{path}: the video has {len(pts)} frame(s); at least 2 are needed")
    timing_settings = timing or TimingSettings()
    found = analyse_timing(pts, info.time_base, timing_settings, declared=[info.frame_rate])
    spans = [1] * len(scores)
    for gap in found.gaps:  # across a timestamp gap the picture moved for missing + 1 intervals
        spans[gap.index - 1] = gap.missing + 1
    detection = detect(scores, settings, colours=colours, spans=spans)
    cadence = find_cadence([run.start for run in detection.runs if run.length == 1], len(pts), timing_settings)
    return Analysis(info=info, pts=tuple(pts), durations=_fill_durations(pts, durations, found.interval, info),
                    scores=tuple(scores), detection=detection,
                    plan=plan_fix_drops(len(pts), detection, found.gaps), timing=found, cadence=cadence,
                    colours=tuple(colours), pictures=pictures)


def _expected_frames(info: VideoInfo) -> int | None:
    if info.frame_count:
        return info.frame_count
    if info.duration:
        return max(1, round(info.duration * info.frame_rate))
    return None


def _fill_durations(pts: Sequence[int], durations: Sequence[int | None], interval: Fraction,
                    info: VideoInfo) -> tuple[int, ...]:
    """Each frame's duration (time-base ticks): the container's where given and consistent, else the gap to the
    next frame; the last one falls back to the nominal frame ``interval`` (seconds), not the average rate, which
    timestamp gaps lower."""
    nominal = max(1, round(interval / info.time_base))
    out = []
    for i, p in enumerate(pts):
        gap = pts[i + 1] - p if i + 1 < len(pts) else None
        given = durations[i]
        if gap is not None:
            out.append(gap if not given or given > gap else given)
        else:
            out.append(given or nominal)
    return tuple(out)


# --- pass 2: rendering ----------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What a :func:`fix_drops` or :func:`upsample` run did (``to_dict`` is the ``--report`` JSON)."""

    command: str
    input: Path
    output: Path
    analysis: Analysis
    plan: FixDropsPlan | UpsamplePlan
    frames_written: int
    synthesized: int
    seconds: float
    encoder: str
    pix_fmt: str
    out_rate: Fraction
    device: str | None = None
    peak_window: int = 0  # most source frames held at once in pass 2 (bounded by plan.max_lookahead)
    extra: dict[str, Any] = field(default_factory=dict)
    #: the model and its settings as used, with the evidence of the scale search (``None``: nothing synthesized
    #: or an injected interpolator)
    model: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "retime": __version__,
            "command": self.command,
            "input": str(self.input),
            "output": str(self.output),
            "analysis": self.analysis.to_dict(),
            "frames_in": self.analysis.n_frames,
            "frames_out": self.frames_written,
            "synthesized": self.synthesized,
            "out_rate": str(self.out_rate),
            "encoder": self.encoder,
            "pix_fmt": self.pix_fmt,
            "device": self.device,
            "seconds": round(self.seconds, 3),
            # upsampling, and fix-drops with --cadence retime/decimate: not the analysis's (fill) plan
            "output_plan": self.plan.to_dict() if self.plan is not self.analysis.plan else None,
            "model": self.model,
            **self.extra,
        }


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


class _Prefetch:
    """Run an iterator in a daemon thread, handing its items over through a bounded queue (the decode thread).

    An exception in the thread is re-raised by the consumer; :meth:`close` stops the thread early.
    """

    def __init__(self, make: Callable[[], Iterable], maxsize: int, name: str) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(make,), name=name, daemon=True)
        self._thread.start()

    def _run(self, make: Callable[[], Iterable]) -> None:
        iterator = None
        try:
            iterator = iter(make())
            for item in iterator:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(_Failure(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.05)


class _Sink:
    """Consume items in a daemon thread (the encode thread); its first exception is re-raised by the producer."""

    def __init__(self, consume: Callable[[Any], None], maxsize: int, name: str) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._consume = consume
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    item = self._queue.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _END:
                    return
                self._consume(item)
        except BaseException as exc:
            self._error = exc

    def put(self, item: Any) -> None:
        while True:
            if self._error is not None:
                raise self._error
            if not self._thread.is_alive():
                raise RuntimeError("the encode thread stopped unexpectedly")
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Wait until every item is consumed; re-raise the thread's exception, if any."""
        self.put(_END)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


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


@dataclass(frozen=True)
class ModelSettings:
    """How the default interpolator is built and set (``retime.interpolate.Interpolator``'s arguments besides the
    device).

    Attributes:
        weights: checkpoint; ``None`` uses ``$RETIME_WEIGHTS`` or the registry entry of ``model``.
        quality: the preset (:data:`~retime.defaults.QUALITY_PRESETS`): ``fast``, ``balanced`` or ``best``.
        model: registry name (``rife-4.6``, ``rife-4.2x``); ``None``: the preset's (searched when it names
            several; 4.2x with ``refine``).
        scale: RIFE's flow scale, one of :attr:`~retime.defaults.Defaults.scale_choices`; ``None`` (auto): chosen
            on the input by the preset's search (:mod:`retime.interpolate.autotune`), or by frame size for a
            preset without one.
        ensemble: ``True``/``False`` fixes it; ``None``: the preset's (searched when the preset tries both).
        refine: add the refinement stage (docs/refinement.md); off by default.
        precision: ``"auto"`` (bfloat16/float16 convolutions where the device has them) or ``"float32"`` (the
            reference implementation's frames); see ``Interpolator``.

    Raises:
        UsageError: unknown preset or a scale that is not offered (checked when made, before any work).
    """

    weights: Path | None = None
    scale: float | None = None
    refine: bool = False
    precision: str = "auto"
    quality: str = DEFAULTS.quality
    model: str | None = None
    ensemble: bool | None = None

    def __post_init__(self) -> None:
        DEFAULTS.check_scale(self.scale)  # before any work: the engine is built only after pass 1
        DEFAULTS.quality_preset(self.quality)

    @property
    def preset(self):
        return DEFAULTS.quality_preset(self.quality)

    @property
    def models(self) -> list[str]:
        """The models to try, the first being the one used without a search (a ``weights`` file is one model)."""
        if self.model or self.refine or self.weights is not None:
            return [self.model or ("rife-4.2x" if self.refine else self.preset.models[0])]
        return list(self.preset.models)

    def candidates(self, height: int, width: int) -> list:
        """The settings the search tries at this frame size (pixels): one when nothing is searched."""
        from retime.interpolate.autotune import Candidate

        base = 0.5 if height * width > 2560 * 1440 else 1.0
        scales = [self.scale] if self.scale is not None else \
            [base * step for step in self.preset.scale_steps if base * step in DEFAULTS.scale_choices]
        ensembles = [self.ensemble] if self.ensemble is not None else list(self.preset.ensembles)
        if self.refine:  # the refinement stage runs after one plain estimate: there is nothing to average
            ensembles = [False]
        return [Candidate(m, sc, en) for m in self.models for sc in scales for en in ensembles]


def _build_engine(device: str, model: ModelSettings, name: str) -> FrameInterpolator:
    from retime.interpolate import Interpolator  # torch is imported only when a frame must be synthesized

    first = model.candidates(1, 1)[0]
    refiner = None
    if model.refine:
        from retime.refine import load_refinement  # ModelError (exit 5) if missing or corrupt

        refiner = load_refinement()
    return Interpolator(weights=model.weights, device=device, scale=model.scale, refiner=refiner,
                        precision=model.precision, model=name, ensemble=first.ensemble)


def _default_interpolator(device: str, model: ModelSettings | None = None) -> Callable[[], FrameInterpolator]:
    """A factory of the interpolator of ``model``'s first model (built when first needed)."""
    model = model or ModelSettings()
    return lambda: _build_engine(device, model, model.models[0])


#: Most memory the search's sample frames may take (bytes; three RGB frames per sample). One sample is kept even
#: when it is larger (300 MB at 8K).
SAMPLE_BYTES = 96 << 20


def tuning_positions(info: VideoInfo, model: ModelSettings | None) -> list[int]:
    """Source frames whose RGB pictures pass 1 keeps for the settings search: ``i - 1, i, i + 1`` around each of
    the preset's sample positions, spread evenly over the expected frame count; none without a search."""
    model = model or ModelSettings()
    if len(model.candidates(info.height, info.width)) < 2:
        return []
    total = _expected_frames(info) or 0
    if total < 3:  # the container does not say: sample the first seconds
        total = 120
    per_sample = 3 * info.width * info.height * 3
    count = max(1, min(model.preset.samples, SAMPLE_BYTES // max(per_sample, 1)))
    centres = sorted({min(max(1, round((k + 0.5) * total / count)), total - 2) for k in range(count)})
    return sorted({i + d for c in centres for i in (c,) for d in (-1, 0, 1)})


def tuning_samples(analysis: Analysis) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """``(i, frame i - 1, frame i, frame i + 1)`` for each kept centre i whose three frames are distinct pictures
    of one shot (no duplicate and no scene cut among them)."""
    det = analysis.detection
    duplicates, cuts = set(det.duplicates), set(det.cuts)
    pics = analysis.pictures
    out = []
    for i in sorted(pics):
        if i - 1 in pics and i + 1 in pics and not ({i, i + 1} & (duplicates | cuts)):
            out.append((i, pics[i - 1], pics[i], pics[i + 1]))
    return out


def _tune(engine: FrameInterpolator, analysis: Analysis, model: ModelSettings | None, device: str, *,
          prefer_finer: bool, budget: int | None = None) -> tuple[FrameInterpolator, dict[str, Any] | None]:
    """Choose the model and set its scale and ensembling on the input.

    ``budget``: the frames the job synthesizes. The search makes at most that many model calls (fewer samples,
    or none: a fix-drops run that repairs 5 frames does not rebuild 16 to choose how).

    Returns:
        ``(engine to render with, the report's model section)``; an injected interpolator (it has no settings)
        comes back as it is, with ``None``.
    """
    if not hasattr(engine, "model_name"):
        return engine, None
    from retime.interpolate.autotune import choose

    model = model or ModelSettings()
    info = analysis.info
    candidates = model.candidates(info.height, info.width)
    if model.weights is not None or os.environ.get(WEIGHTS_ENV):  # a user's file: one network, whatever its layout
        candidates = list(dict.fromkeys(dataclasses.replace(c, model=engine.model_name) for c in candidates))
    samples = tuning_samples(analysis) if len(candidates) > 1 else []
    if budget is not None and len(candidates) > 1:
        samples = samples[:budget // len(candidates)]
    if len(candidates) > 1 and not samples:  # nothing to rebuild: the first model by the size rule
        base = engine.scale_for(info.height, info.width)
        own = [c for c in candidates if c.model == engine.model_name] or candidates[:1]
        candidates = [min(own, key=lambda c: (abs(c.scale - base), not c.ensemble))]
    engines = {engine.model_name: engine}

    def get(name: str) -> FrameInterpolator:
        if name not in engines:
            engines[name] = _build_engine(device, model, name)
        return engines[name]

    choice = choose(get, samples, candidates, prefer_finer=prefer_finer)
    chosen = get(choice.candidate.model)
    chosen.scale, chosen.ensemble = choice.candidate.scale, choice.candidate.ensemble
    engines.clear()
    analysis.pictures.clear()
    return chosen, {"name": chosen.model_name, "quality": model.quality, "precision": model.precision,
                    "searched": len(choice.trials) > 0, **choice.to_dict()}


def _check_device(device: str) -> None:
    """Raise UsageError for a device that does not exist here (imports torch)."""
    from retime.interpolate import choose_device

    choose_device(device)


def _memo(factory: Callable[[], FrameInterpolator]) -> Callable[[], FrameInterpolator]:
    made: list[FrameInterpolator] = []

    def get() -> FrameInterpolator:
        if not made:
            made.append(factory())
        return made[0]

    get.made = made  # type: ignore[attr-defined]
    return get


def _settle_engine(get_engine: Callable[[], FrameInterpolator], injected: bool, analysis: Analysis, plan,
                   model: ModelSettings | None, device: str, *, prefer_finer: bool
                   ) -> tuple[Callable[[], FrameInterpolator], dict[str, Any] | None]:
    """After pass 1: the engine pass 2 renders with and the report's ``model`` section.

    When the plan synthesizes something and the engine is not injected (an injected one is used as it is), the
    engine is built now, so that its weights are checked before the long pass, and tuned on the input
    (:func:`_tune`). The sample pictures are freed either way.
    """
    tuning = None
    if plan.synthesized and not injected:
        engine, tuning = _tune(get_engine(), analysis, model, device, prefer_finer=prefer_finer,
                               budget=plan.synthesized)
        get_engine = _memo(lambda: engine)
    analysis.pictures.clear()
    return get_engine, tuning


def _device_name(get: Callable[[], FrameInterpolator]) -> str | None:
    made = getattr(get, "made", [])
    return str(getattr(made[0], "device", "injected")) if made else None


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


def _attach_report(staged, report: str | Path | None, result: RunResult) -> None:
    if report is not None:
        staged.attach(report, (json.dumps(result.to_dict(), indent=2) + "\n").encode())


def fix_drops(input: str | Path, output: str | Path, *, detection: DetectionSettings | None = None,
              encode: EncodeSettings | None = None, interpolator: FrameInterpolator | None = None,
              device: str = DEFAULTS.device, model: ModelSettings | None = None, overwrite: bool = False,
              progress: Progress | None = None, report: str | Path | None = None,
              timing: TimingSettings | None = None, cadence: str = "fill") -> RunResult:
    """Replace duplicated frames with interpolated ones and fill timestamp gaps; every other frame, every source
    timestamp (PTS), the duration and the frame rate stay the input's. Other streams are copied.

    A run of k duplicates between distinct frames A and B becomes A, I(1/(k+1)), ..., I(k/(k+1)), B; runs longer
    than ``detection.max_run`` (freezes), runs at the end and runs across a scene cut are kept. On a CFR input with
    timestamp gaps (a VFR capture that dropped frames) each gap of k missing intervals gets k frames, interpolated
    the same way, at even PTS between its neighbours: the output is CFR at the nominal rate
    (:attr:`Analysis.timing`); a gap of more than ``max_run`` intervals or across a cut is held (copies of A).

    ``cadence``: ``"fill"`` (the above), or, on a video whose repeats follow a cadence, ``"retime"`` (every frame
    re-timed to even motion, same rate and duration) or ``"decimate"`` (the repeats dropped, output at the source
    rate); see :func:`retime.plan.plan_cadence`.

    Args:
        input, output: file paths; ``output``'s extension picks the container.
        detection: detection settings (defaults: :data:`retime.defaults.DEFAULTS`).
        encode: codec, CRF, preset of the output.
        interpolator: an object with ``interpolate(frame0, frame1, ts)``; ``None`` builds
            ``Interpolator(device=device)`` if (and only if) something must be synthesized.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` for the default interpolator.
        model: weights, scale and refinement of the default interpolator.
        overwrite: replace an existing ``output``.
        progress: ``progress(stage, done, total)`` callback.
        report: write :meth:`RunResult.to_dict` there as JSON, committed together with the video (both or neither).
        timing: timing-analysis settings (gap threshold, cadence regularity).
        cadence: ``"fill"``, ``"retime"`` or ``"decimate"``.

    Raises:
        InputError, OutputError, ModelError, UsageError: see :mod:`retime.errors` (UsageError also for a cadence
        mode on a video without a cadence); on any error (and on KeyboardInterrupt) no output file is left behind.
    """
    started = time.monotonic()
    progress = progress or _no_progress
    encode = encode or EncodeSettings()
    if cadence not in CADENCE_MODES:
        raise UsageError(f"--cadence must be one of {', '.join(CADENCE_MODES)}, got {cadence!r}")
    info = probe(input)
    check_output_path(Path(output), input=Path(input), overwrite=overwrite)
    get_engine = _memo((lambda: interpolator) if interpolator is not None else _default_interpolator(device, model))
    if interpolator is None and device != "auto":
        _check_device(device)  # an explicit --device cuda without CUDA fails now, not after pass 1
    with atomic_output(output, input=input, overwrite=overwrite) as staged:
        # opened before pass 1 so that an unusable codec or stream is reported before any work; opened again
        # below in the rare case that the output's time base or rate differs from the input's
        writer = VideoWriter(staged.path, info, settings=encode, time_base=info.time_base, rate=info.frame_rate,
                             label=output)
        try:
            keep = tuning_positions(info, model) if interpolator is None else []
            analysis = analyse(input, detection, info=info, progress=progress, keep_rgb=keep, timing=timing)
            plan = analysis.cadence_plan(cadence)
            time_base, out_rate = info.time_base, info.frame_rate
            if plan.out_rate is not None:  # decimation: CFR at the source rate, re-stamped
                out_rate = plan.out_rate
                time_base, first_pts, ticks = _output_timeline(out_rate, analysis.times[0])
                stamps: Callable[[int], tuple[int, int]] = lambda j: (first_pts + j * ticks, ticks)
            elif plan.positions is not None:  # gaps filled: CFR at the nominal rate
                out_rate = analysis.timing.rate
                stamps = _gap_stamps(plan, analysis)
            else:
                stamps = lambda j: (analysis.pts[j], analysis.durations[j])
            if (time_base, out_rate) != (info.time_base, info.frame_rate):
                writer.abort()
                writer = VideoWriter(staged.path, info, settings=encode, time_base=time_base, rate=out_rate,
                                     label=output)
            get_engine, tuning = _settle_engine(get_engine, interpolator is not None, analysis, plan, model, device,
                                                prefer_finer=False)
            peak = _write_through(writer, stamps, plan, lambda: iter_frames(input), get_engine, progress)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        result = RunResult(command="fix-drops", input=Path(input), output=Path(output), analysis=analysis,
                           plan=plan, frames_written=writer.frames_written, synthesized=plan.synthesized,
                           seconds=time.monotonic() - started, encoder=writer.encoder, pix_fmt=writer.pix_fmt,
                           out_rate=out_rate, device=_device_name(get_engine), peak_window=peak,
                           extra={"notes": writer.notes, "cadence_mode": cadence}, model=tuning)
        _attach_report(staged, report, result)
    return result


def _gap_stamps(plan: FixDropsPlan, analysis: Analysis) -> Callable[[int], tuple[int, int]]:
    """(PTS, duration) of each output frame of a plan with gaps filled, in the input's time base: a source frame
    keeps its PTS; the i-th of k frames in the gap after source frame a is at ``i / (k + 1)`` of the way to the
    next (rounded to a tick; the timing analysis leaves at least one tick per frame, so PTS stay increasing)."""
    pts = analysis.pts
    out = []
    for j in range(len(plan.frames)):
        position = plan.position(j)
        a = position.numerator // position.denominator
        fraction = position - a
        out.append(pts[a] if not fraction else pts[a] + round(fraction * (pts[a + 1] - pts[a])))
    durations = [b - a for a, b in zip(out, out[1:])] + [analysis.durations[-1]]
    return lambda j: (out[j], durations[j])


#: Highest output frame rate upsample accepts (frames per second): a guard against a typo that would synthesize
#: millions of frames.
MAX_RATE = 1000


def upsample_rate(info: VideoInfo, *, factor: int | None = None, fps: Fraction | str | float | None = None,
                  source_rate: Fraction | None = None) -> Fraction:
    """The output frame rate: ``factor`` times the source rate, or ``fps`` (frames per second).

    ``source_rate`` is the nominal rate from the timing analysis (:attr:`Analysis.timing`); before pass 1 the
    container's rate ``info.frame_rate`` stands in (an average, lower than the nominal rate when frames are
    missing).

    Raises:
        UsageError: both or neither given, ``factor < 2``, ``fps`` not a positive number or not above the source
            rate.
    """
    source = source_rate or info.frame_rate
    if factor is not None and fps is not None:
        raise UsageError("give either --factor or --fps, not both")
    if fps is not None:
        rate = parse_rate(fps)
        if rate <= source:
            raise UsageError(f"--fps {fps} is not above the source rate {source} fps ({float(source):.3f}); "
                             f"upsample only raises the rate (to repair drops at the same rate use fix-drops)")
        return rate
    factor = DEFAULTS.factor if factor is None else factor
    if int(factor) != factor or factor < 2:
        raise UsageError(f"--factor must be an integer >= 2, got {factor}")
    rate = source * int(factor)
    if rate > MAX_RATE:
        raise UsageError(f"--factor {factor} would give {float(rate):g} fps; the most is {MAX_RATE} fps")
    return rate


def parse_rate(value: Fraction | str | float | int) -> Fraction:
    """A frame rate from ``60``, ``"59.94"``, ``"60000/1001"`` or a Fraction (frames per second, > 0).

    Raises:
        UsageError: not a positive finite number.
    """
    try:
        rate = Fraction(str(value).strip()) if not isinstance(value, Fraction) else value
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"--fps must be a positive number such as 60 or 60000/1001, got {value!r}") from None
    if rate <= 0 or rate > MAX_RATE:
        raise UsageError(f"--fps must be in (0, {MAX_RATE}] frames per second, got {value!r}")
    return rate


def _output_timeline(rate: Fraction, start: Fraction) -> tuple[Fraction, int, int]:
    """(time base, PTS of the first frame, ticks per frame) for a CFR output at ``rate`` starting at ``start``.

    The time base is 1/L with L a multiple of the rate's numerator and of the start time's denominator, so every
    output time ``start + j / rate`` is an exact integer PTS (60000/1001 fps from 0: time base 1/60000, 1001 ticks
    per frame). L must fit FFmpeg's 32-bit rationals; past that the start is rounded to the nearest tick.
    """
    step = 1 / rate
    denominator = math.lcm(step.denominator, start.denominator)
    if denominator >= 2**31:
        denominator = step.denominator
    time_base = Fraction(1, denominator)
    ticks = step / time_base
    return time_base, round(start / time_base), int(ticks)


def snap_times(times: Sequence[Fraction], out_rate: Fraction, *, tolerance: Fraction) -> list[Fraction]:
    """Source frame times moved onto the output grid ``times[0] + j / out_rate`` where they lie within
    ``tolerance`` seconds of it (and the order stays strict), so that they are copied, not re-synthesized.

    A container's time base rounds timestamps: in Matroska (1 ms) a 30000/1001 fps frame sits at 0.067 s, not at
    1001/15000 s, and an exact comparison would synthesize every source frame at t = 0.005 instead of passing it
    through. Half a tick of the input's time base is the rounding error, so that is the tolerance to pass.
    """
    if not times:
        return []
    start = times[0]
    out = [start]
    for t in times[1:]:
        j = round((t - start) * out_rate)
        grid = start + j / out_rate
        snapped = grid if abs(grid - t) <= tolerance and grid > out[-1] else t
        out.append(snapped if snapped > out[-1] else t)
    return out


def upsample(input: str | Path, output: str | Path, *, factor: int | None = None,
             fps: Fraction | str | float | None = None, detection: DetectionSettings | None = None,
             encode: EncodeSettings | None = None, interpolator: FrameInterpolator | None = None,
             device: str = DEFAULTS.device, model: ModelSettings | None = None, overwrite: bool = False,
             progress: Progress | None = None, report: str | Path | None = None,
             timing: TimingSettings | None = None) -> RunResult:
    """Raise the frame rate to ``factor`` x the input's nominal rate or to ``fps``: a constant-frame-rate output of
    the same duration, source frames passed through, frames synthesized at the exact time between each pair,
    nothing blended across scene cuts. Other streams are copied.

    Args:
        factor: integer >= 2 (default :data:`DEFAULTS.factor` when ``fps`` is not given either), times the
            nominal rate of the timing analysis (not the average, which timestamp gaps lower).
        fps: any rational rate above the source's, e.g. ``"60000/1001"``.
        other arguments: as :func:`fix_drops`. Timestamp gaps longer than ``max_run`` intervals are held (the
        frame before them copied), not interpolated across.

    Raises:
        UsageError: bad ``factor``/``fps`` (``fps`` at or below the source rate); and as :func:`fix_drops`.
    """
    started = time.monotonic()
    progress = progress or _no_progress
    encode = encode or EncodeSettings()
    info = probe(input)
    out_rate = upsample_rate(info, factor=factor, fps=fps)
    check_output_path(Path(output), input=Path(input), overwrite=overwrite)
    get_engine = _memo((lambda: interpolator) if interpolator is not None else _default_interpolator(device, model))
    get_engine()  # upsampling always synthesizes: check the weights before any work
    start = (info.start_pts or 0) * info.time_base
    time_base, first_pts, ticks = _output_timeline(out_rate, start)
    with atomic_output(output, input=input, overwrite=overwrite) as staged:
        # opened before pass 1 so that an unusable codec or stream is reported before any work; opened again at
        # the nominal rate's multiple when the container's rate was an average lowered by timestamp gaps
        writer = VideoWriter(staged.path, info, settings=encode, time_base=time_base, rate=out_rate, label=output)
        try:
            keep = tuning_positions(info, model) if interpolator is None else []
            analysis = analyse(input, detection, info=info, progress=progress, keep_rgb=keep, timing=timing)
            rate = upsample_rate(info, factor=factor, fps=fps, source_rate=analysis.timing.rate)
            if rate != out_rate:
                writer.abort()
                out_rate = rate
                time_base, first_pts, ticks = _output_timeline(out_rate, start)
                writer = VideoWriter(staged.path, info, settings=encode, time_base=time_base, rate=out_rate,
                                     label=output)
            times = snap_times(analysis.times, out_rate, tolerance=info.time_base / 2)
            # the end is a rounded PTS plus a rounded duration: up to one tick off the grid
            end = snap_times([times[0], analysis.end_time], out_rate, tolerance=info.time_base)[1]
            holds = [g.index for g in analysis.plan.gaps if g.action == KEEP_HOLD]
            plan = plan_upsample(times, out_rate, analysis.detection.cuts, end, holds)
            # neighbours one interval apart move half as far as those around a rebuilt frame: ties go finer
            get_engine, tuning = _settle_engine(get_engine, interpolator is not None, analysis, plan, model, device,
                                                prefer_finer=True)
            if plan.start_time != start:  # the first frame's PTS differs from the probe's: keep exact times
                first_pts = round(plan.start_time / time_base)
            peak = _write_through(writer, lambda j: (first_pts + j * ticks, ticks), plan,
                                  lambda: iter_frames(input), get_engine, progress)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        result = RunResult(command="upsample", input=Path(input), output=Path(output), analysis=analysis,
                           plan=plan, frames_written=writer.frames_written, synthesized=plan.synthesized,
                           seconds=time.monotonic() - started, encoder=writer.encoder, pix_fmt=writer.pix_fmt,
                           out_rate=out_rate, device=_device_name(get_engine), peak_window=peak,
                           extra={"notes": writer.notes}, model=tuning)
        _attach_report(staged, report, result)
    return result
