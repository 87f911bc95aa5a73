"""Pass 1, the analysis: grey frames decoded and scored pair by pair, timestamps analysed, duplicates, cuts and the
cadence detected, the fix-drops plan made (:func:`analyse`, also what ``retime detect`` prints)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Container, Sequence

import numpy as np

from retime import __version__
from retime.detect import (Detection, DetectionSettings, NeighbourGram, analysis_block, block_average, colour_change,
                           colour_histogram, detect, frame_difference, previous_frame_vectors)
from retime.errors import InputError, UsageError
from retime.media.decode import iter_luma
from retime.media.probe import VideoInfo, probe
from retime.pipeline._protocols import Progress, _no_progress
from retime.plan import CADENCE_MODES, FixDropsPlan, plan_cadence, plan_fix_drops
from retime.timing import Cadence, Timing, TimingSettings, analyse_timing, find_cadence

__all__ = ["THUMBNAIL", "Analysis", "analyse"]

#: Longer side of the RGB thumbnail pass 1 takes each frame's colour histogram from (pixels): a cut candidate is
#: confirmed by its colour change (retime.detect.colour_change), which needs no detail, only enough pixels (about
#: 5000 at 16:9) that a histogram of 512 colours is stable.
THUMBNAIL = 96


@dataclass(frozen=True)
class Analysis:
    """Pass 1's result: per-frame timestamps and scores, what was detected, and the fix-drops plan.

    Attributes:
        info: the input's facts.
        pts: each frame's PTS in ``info.time_base`` units, in decode (presentation) order.
        durations: each frame's duration in ``info.time_base`` units (from the container, else the gap to the
            next frame; the last frame's falls back to the nominal interval of the timing analysis).
        scores: ``scores[i]`` = mean absolute grey-level difference of frames i and i + 1, box-averaged as
            ``retime.detect.analysis_block`` says for the frame size (grey levels).
        detection: duplicates, runs, freezes, scene cuts.
        plan: the fix-drops plan for this detection (``--cadence fill``: repeats and timestamp gaps repaired in
            place).
        timing: nominal rate, regularity and timestamp gaps (:func:`retime.timing.analyse_timing`).
        cadence: the repeat cadence, if the single repeats fall on one (:func:`retime.timing.find_cadence`).
        colours: ``colours[i]`` = colour change of frames i and i + 1 (``retime.detect.colour_change``, in [0, 1]),
            measured where ``scores[i] >= cut_min`` (only cut rules read it), NaN elsewhere.
        vectors: ``vectors[i]`` = share of frame i + 1's inter-coded area its decoded motion vectors moved (NaN
            where a frame has none), as detection used them; ``None`` where the stream has B-frames or exports no
            vectors (``retime.detect.previous_frame_vectors``).
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
    vectors: tuple[float, ...] | None = None
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
        """One entry per duplicate frame: index, time (s), score (grey levels), the rule that flagged it, and what
        fix-drops does with it."""
        action = {}
        for run in self.plan.runs:
            for i in range(run.start, run.start + run.length):
                action[i] = run.action
        reason = {i: text for run in self.detection.runs for i, text in zip(run.frames, run.reasons)}
        return [{"frame": i, "time": round(self.time_of(i), 6), "score": round(self.scores[i - 1], 4),
                 "reason": reason.get(i, ""), "action": action.get(i, "interpolate")}
                for i in self.detection.duplicates]

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
            "colours": [None if math.isnan(c) else round(c, 4) for c in self.colours],
            "motion_vectors": None if self.vectors is None else [None if math.isnan(v) else round(v, 4)
                                                                 for v in self.vectors],
            "plan": self.plan.to_dict(),
        }


def analyse(path: str | Path, detection: DetectionSettings | None = None, *, info: VideoInfo | None = None,
            progress: Progress | None = None, keep_rgb: Container[int] = (),
            timing: TimingSettings | None = None) -> Analysis:
    """Pass 1: decode ``path`` as grey frames, score consecutive frames, detect duplicates and cuts, analyse the
    timestamps (nominal rate, gaps) and the repeats (cadence), plan fix-drops.

    Each pair that could be a cut (a score of at least ``cut_min``) also gets the colour change of its thumbnails'
    histograms, which tells a cut from fast motion (the thumbnails are made for those pairs only); in a
    stream without B-frames each P-frame's decoded motion vectors tell a re-coded repeat from slow motion; the
    scored frames' inner products with their neighbours (``retime.detect.NeighbourGram``) tell a repeat from a
    real frame that barely moves. Memory: the last ``GRAM_REACH + 1`` scored frames (as float64), one histogram
    pair, a few numbers per frame, and the RGB pictures of the frames in ``keep_rgb``.

    Raises:
        InputError: the file is missing, not a video, has no video stream, is corrupted or truncated, or has fewer
            than 2 frames.
    """
    settings = detection or DetectionSettings()
    info = info or probe(path)
    progress = progress or _no_progress
    expected = _expected_frames(info)
    pts: list[int] = []
    durations: list[int | None] = []
    scores: list[float] = []
    colours: list[float] = []
    previous: np.ndarray | None = None  # the previous frame as scored (box-averaged)
    block = 1
    previous_frame = None  # the previous LumaFrame: its size, and its thumbnail when a pair needs colours
    previous_histogram: np.ndarray | None = None
    pictures: dict[int, np.ndarray] = {}
    picture_types: list[str] = []
    shares: list[float | None] = []
    gram = NeighbourGram()
    for frame in iter_luma(path, keep_rgb=keep_rgb, vectors=True):
        if frame.rgb is not None:
            pictures[frame.index] = frame.rgb
        histogram = None
        if previous is None:
            block = analysis_block(frame.luma.shape[1], frame.luma.shape[0])
        elif frame.luma.shape != previous_frame.luma.shape:
            raise InputError(f"{path}: the frame size changes at frame {frame.index} "
                             f"({previous_frame.luma.shape[1]}x{previous_frame.luma.shape[0]} to "
                             f"{frame.luma.shape[1]}x{frame.luma.shape[0]}); retime needs one size")
        scored = block_average(frame.luma, block)  # averaging removes a fast encoder's noise, keeps the motion
        gram.add(scored)
        if previous is not None:
            score = frame_difference(previous, scored)
            scores.append(score)
            if score >= settings.cut_min:  # the only pairs whose colours a detection rule reads
                if previous_histogram is None:
                    previous_histogram = colour_histogram(previous_frame.thumbnail(THUMBNAIL))
                histogram = colour_histogram(frame.thumbnail(THUMBNAIL))
                colours.append(colour_change(previous_histogram, histogram))
            else:
                colours.append(math.nan)
        previous, previous_frame, previous_histogram = scored, frame, histogram
        pts.append(frame.pts)
        durations.append(frame.duration)
        picture_types.append(frame.picture_type)
        shares.append(frame.vectors)
        progress("analyse", len(pts), expected)
    if len(pts) < 2:
        raise InputError(f"{path}: the video has {len(pts)} frame(s); at least 2 are needed")
    timing_settings = timing or TimingSettings()
    found = analyse_timing(pts, info.time_base, timing_settings, declared=[info.frame_rate])
    spans = [1] * len(scores)
    for gap in found.gaps:  # across a timestamp gap the picture moved for missing + 1 intervals
        spans[gap.index - 1] = gap.missing + 1
    vectors = previous_frame_vectors(picture_types, shares)
    detection = detect(scores, settings, colours=colours, spans=spans, vectors=vectors, gram=gram.array())
    cadence = find_cadence([run.start for run in detection.runs if run.length == 1], len(pts), timing_settings)
    return Analysis(info=info, pts=tuple(pts), durations=_fill_durations(pts, durations, found.interval, info),
                    scores=tuple(scores), detection=detection,
                    plan=plan_fix_drops(len(pts), detection, found.gaps), timing=found, cadence=cadence,
                    colours=tuple(colours), vectors=None if vectors is None else tuple(vectors.tolist()),
                    pictures=pictures)


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
