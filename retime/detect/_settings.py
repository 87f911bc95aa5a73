"""What detection is given and what it finds: :class:`DetectionSettings`, :class:`DuplicateRun`,
:class:`SceneCut` and the :class:`Detection` result. Plain data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from retime.defaults import DEFAULTS
from retime.errors import UsageError


@dataclass(frozen=True)
class DetectionSettings:
    """Settings of :func:`detect`; every default comes from :data:`retime.defaults.DEFAULTS`.

    Attributes:
        threshold: ceiling, in grey levels: no score above it is a duplicate (the T of the module docstring, per
            pixel).
        floor: grey levels; a score at or below it is a duplicate whatever its neighbours (identical frames up
            to coding noise).
        dip_ratio: a score between ``floor`` and ``threshold`` is a duplicate when it is at most this fraction of
            the local motion level and of the scores just outside its run (dimensionless, in (0, 1)).
        deep_ratio: a score at most this fraction of the local motion level may be a duplicate even above
            ``threshold``: fast encoders leave duplicates of fast motion a grey level or two apart, still a deep
            dip (dimensionless, in [0, dip_ratio]; 0 makes ``threshold`` a hard ceiling).
        window: scores on each side (nearest first, duplicates and cuts skipped) whose median gives the local
            motion level (frames).
        min_motion: grey levels; where the local motion level is lower, only ``floor`` applies (a nearly static
            shot has no dips worth repairing, and an encoder skipping an update makes one).
        max_run: a run of more than this many consecutive duplicates is an intentional freeze and is kept
            (frames).
        scene_cut: a score above this is a scene cut (grey levels).
        cut_ratio: a score at least ``cut_min`` and at least this many times the expected local motion is also a
            scene cut (dimensionless).
        cut_min: grey levels; smallest score that the relative cut rule may call a cut.
        cut_colour: a cut candidate is a cut only if its :func:`colour_change` is at least this (dimensionless, in
            [0, 1]; 0 calls every candidate a cut). Applies only where the caller gives colour changes.
        colour_cut: a score of at least ``cut_min`` whose colour change is at least this is a cut even when the
            grey-level rules see no spike: two shots of the same brightness and different colours (dimensionless,
            in [cut_colour, 1]; 1 turns the rule off but for complete changes).
        vector_dip: where the decoder's motion vectors are known (streams without B-frames), a candidate score is
            also a duplicate when its frame's moved area is at most this fraction of its neighbours'
            (dimensionless, in [0, 1); 0 turns the rule off).
        position_cut: where the caller gives the frames' inner products (``detect(gram=...)``), a frame the dip
            tests took is not a duplicate when, on the way from the frame before its run to the frame after it, it
            steps more than this fraction of the way beyond the frame before it (dimensionless, in [0, 1); 0 turns
            the test off).
        vector_position_cut: the same test's cut for a frame whose motion vectors call it a repeat (``vector_dip``;
            dimensionless, in [0, 1)); such a frame is judged at the larger of the two cuts.

    Raises:
        UsageError: a value is out of range (the message names the setting and the value).
    """

    threshold: float = DEFAULTS.threshold
    floor: float = DEFAULTS.duplicate_floor
    dip_ratio: float = DEFAULTS.dip_ratio
    deep_ratio: float = DEFAULTS.deep_ratio
    window: int = DEFAULTS.motion_window
    min_motion: float = DEFAULTS.min_motion
    max_run: int = DEFAULTS.max_run
    scene_cut: float = DEFAULTS.scene_cut
    cut_ratio: float = DEFAULTS.cut_ratio
    cut_min: float = DEFAULTS.cut_min
    cut_colour: float = DEFAULTS.cut_colour
    colour_cut: float = DEFAULTS.colour_cut
    vector_dip: float = DEFAULTS.vector_dip
    position_cut: float = DEFAULTS.position_cut
    vector_position_cut: float = DEFAULTS.vector_position_cut

    def __post_init__(self) -> None:
        checks = [
            ("threshold", self.threshold, 0 <= self.threshold <= 255, "a grey level in [0, 255]"),
            ("floor", self.floor, 0 <= self.floor <= self.threshold, "a grey level in [0, threshold]"),
            ("dip_ratio", self.dip_ratio, 0 < self.dip_ratio < 1, "a ratio in (0, 1)"),
            ("deep_ratio", self.deep_ratio, 0 <= self.deep_ratio <= self.dip_ratio, "a ratio in [0, dip_ratio]"),
            ("window", self.window, isinstance(self.window, int) and self.window >= 1, "an integer >= 1 (frames)"),
            ("min_motion", self.min_motion, 0 <= self.min_motion <= 255, "a grey level in [0, 255]"),
            ("max_run", self.max_run, isinstance(self.max_run, int) and self.max_run >= 1,
             "an integer >= 1 (frames)"),
            ("scene_cut", self.scene_cut, self.threshold < self.scene_cut <= 255,
             "a grey level above threshold and at most 255"),
            ("cut_ratio", self.cut_ratio, self.cut_ratio > 1, "a ratio > 1"),
            ("cut_min", self.cut_min, self.threshold < self.cut_min <= self.scene_cut,
             "a grey level in (threshold, scene_cut]"),
            ("cut_colour", self.cut_colour, 0 <= self.cut_colour <= 1, "a colour change in [0, 1]"),
            ("colour_cut", self.colour_cut, self.cut_colour <= self.colour_cut <= 1,
             "a colour change in [cut_colour, 1]"),
            ("vector_dip", self.vector_dip, 0 <= self.vector_dip < 1, "a ratio in [0, 1)"),
            ("position_cut", self.position_cut, 0 <= self.position_cut < 1, "a fraction in [0, 1)"),
            ("vector_position_cut", self.vector_position_cut, 0 <= self.vector_position_cut < 1,
             "a fraction in [0, 1)"),
        ]
        for name, value, ok, expected in checks:
            if not ok:
                raise UsageError(f"detection setting {name}={value!r} is out of range: expected {expected}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DuplicateRun:
    """``length`` consecutive duplicate frames ``start .. start + length - 1``, each repeating the one before.

    Attributes:
        start: index of the first duplicate frame (>= 1; frame 0 has nothing before it).
        length: k, the number of duplicates in the run (frames).
        scores: the k scores that made them duplicates, ``scores[m]`` = difference of frame ``start + m`` against
            frame ``start + m - 1`` (grey levels).
        motion: the local motion level each score was compared with (grey levels; ``None`` where too few
            neighbours).
        reasons: one human-readable line per duplicate saying which rule flagged it.
        freeze: ``length > max_run``: an intentional freeze, kept as it is.
    """

    start: int
    length: int
    scores: tuple[float, ...]
    motion: tuple[float | None, ...]
    reasons: tuple[str, ...]
    freeze: bool

    @property
    def left(self) -> int:
        """The distinct frame before the run (the frame the duplicates repeat)."""
        return self.start - 1

    @property
    def right(self) -> int:
        """The first distinct frame after the run; equals the frame count when the run touches the last frame."""
        return self.start + self.length

    @property
    def frames(self) -> range:
        """Indices of the duplicate frames."""
        return range(self.start, self.start + self.length)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "length": self.length,
            "left": self.left,
            "right": self.right,
            "scores": [round(s, 4) for s in self.scores],
            "motion": [None if m is None else round(m, 4) for m in self.motion],
            "reasons": list(self.reasons),
            "freeze": self.freeze,
        }


@dataclass(frozen=True)
class SceneCut:
    """A scene cut (or a rejected candidate) between frames ``index - 1`` and ``index``; ``score`` is their
    difference (grey levels), ``colour`` their :func:`colour_change` (``None`` when not measured)."""

    index: int
    score: float
    reason: str
    colour: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "score": round(self.score, 4), "reason": self.reason}
        if self.colour is not None:
            out["colour"] = round(self.colour, 4)
        return out


@dataclass(frozen=True)
class Detection:
    """What :func:`detect` found in a video of ``n_frames`` frames (frame indices count from 0, in decode order).

    Attributes:
        n_frames: number of frames analysed (``len(scores) + 1``).
        duplicates: indices of the frames that repeat the frame before them, ascending (freezes included).
        runs: the duplicates grouped into maximal runs of consecutive frames, ascending.
        cuts: index j means a scene cut between frame j - 1 and frame j, ascending.
        cut_details: the same cuts with their scores and the rule that found each.
        settings: the settings used.
        scores: the input scores (grey levels), kept for reports.
        fast_motion: cut candidates whose colours barely changed: fast motion, not cuts (interpolated).
    """

    n_frames: int
    duplicates: list[int]
    runs: list[DuplicateRun]
    cuts: list[int]
    cut_details: list[SceneCut]
    settings: DetectionSettings
    scores: tuple[float, ...] = field(repr=False)
    fast_motion: list[SceneCut] = field(default_factory=list)

    @property
    def freezes(self) -> list[DuplicateRun]:
        """Runs longer than ``settings.max_run``: intentional freezes, kept as they are."""
        return [run for run in self.runs if run.freeze]
