"""The one source of truth for retime's defaults, shared by the library API, the CLI and the benchmark.

Each value has a unit and a reason. Change a default here and both the CLI's ``--help`` and the API follow.
"""

from __future__ import annotations

from dataclasses import dataclass

from retime.errors import UsageError

__all__ = ["DEFAULTS", "Defaults", "QUALITY_PRESETS", "QualityPreset"]


@dataclass(frozen=True)
class QualityPreset:
    """What ``--quality NAME`` runs: a model, and the settings its flow scale search tries (``--scale auto``).

    Attributes:
        models: weights registry names, searched when more than one (the first is used without a search).
        scale_steps: candidate flow scales as multiples of the size rule's scale (1 up to 1440p, 0.5 above);
            one value means no search.
        ensembles: candidate ensembling settings.
        samples: source frames rebuilt per candidate (fewer when memory is short at large sizes).
        flips: candidate flip averaging settings (``Interpolator``'s ``flips``: 0 off, 1 the left-right mirror,
            2 also the upside-down one).
    """

    name: str
    models: tuple[str, ...]
    scale_steps: tuple[float, ...]
    ensembles: tuple[bool, ...]
    samples: int
    flips: tuple[int, ...] = (0,)

    @property
    def searches(self) -> bool:
        return len(self.models) * len(self.scale_steps) * len(self.ensembles) * len(self.flips) > 1


#: The three presets; what each runs was decided by measurement (docs/quality.md).
QUALITY_PRESETS = {
    "fast": QualityPreset("fast", ("rife-4.6",), (1.0,), (False,), 0),
    "balanced": QualityPreset("balanced", ("rife-4.6", "rife-4.2x"), (1.0, 0.5), (True,), 4),
    "best": QualityPreset("best", ("rife-4.6", "rife-4.2x"), (2.0, 1.0, 0.5), (False, True), 6, flips=(2,)),
}


@dataclass(frozen=True)
class Defaults:
    # --- detection (retime.detect) -------------------------------------------------------------------------
    # Each value below was chosen on measurements that docs/detection.md gives (the "Defaults" and "Scene cuts"
    # sections); the comments say what a value means and why it has that size.
    #: Duplicate threshold T, a mean absolute difference per pixel in 8-bit grey levels (0-255) between a frame and
    #: the one before it: the design's L1 loss sum_x |I_t(x) - I_t+1(x)| is compared with threshold * pixel_count,
    #: so one value works at every resolution. A ceiling: a score must also be a sharp dip (dip_ratio), because
    #: re-encoded duplicates and slow real motion overlap in score.
    threshold: float = 0.5
    #: A score at or below this is a duplicate whatever its neighbours: identical frames up to coding noise (grey
    #: levels); under what an encoder's skipped updates leave in a slow pan.
    duplicate_floor: float = 0.03
    #: Above duplicate_floor, a duplicate scores at most this fraction of the local motion level and of the scores
    #: beside its run: a duplicate is a sharp dip, real motion slowing for a frame or two is not (dimensionless).
    dip_ratio: float = 0.4
    #: A dip deeper than this fraction of the local motion level counts even above threshold: fast x264 presets
    #: leave duplicates of fast motion a grey level or two apart (dimensionless; 0 makes threshold a hard ceiling).
    deep_ratio: float = 0.2
    #: Scores on each side (nearest first, duplicates and cuts skipped) whose median gives the local motion level
    #: (frames): wide enough that runs of max_run duplicates do not move the median, short enough (about a third
    #: of a second) to follow motion that speeds up or slows down.
    motion_window: int = 8
    #: Below this local motion level (grey levels per frame) only duplicate_floor applies: a repeat there is
    #: invisible, and an encoder skipping an update in a slow pan makes the same dip as a duplicate.
    min_motion: float = 0.5
    #: A run of more than this many consecutive duplicates is an intentional freeze and is kept (frames).
    max_run: int = 3
    #: Scene-cut threshold: mean absolute grey-level difference above which two consecutive frames are treated as
    #: belonging to different shots, so that nothing is interpolated across them (grey levels).
    scene_cut: float = 40.0
    #: A score this many times the expected local motion is also a scene cut, for cuts between similar-looking
    #: shots that stay under scene_cut (dimensionless). Above (max_run + 1) with margin, because the first frame
    #: after a run of k duplicates legitimately differs by about k + 1 times the motion.
    cut_ratio: float = 6.0
    #: Smallest score the relative cut rule may call a cut (grey levels), so that a jolt in a near-static shot is
    #: not a cut.
    cut_min: float = 12.0
    #: A cut candidate (above) is a cut only if its colours change this much (colour change of 8x8x8-level RGB
    #: histograms of 96-pixel thumbnails, in [0, 1]): fast motion changes the pixels more than the colours, and
    #: copying a frame the model could interpolate loses to the model.
    cut_colour: float = 0.23
    #: A colour change this large (with a score of at least cut_min) is a cut even without a grey-level spike: two
    #: shots of the same brightness in other colours; about twice what the fastest motion reached.
    colour_cut: float = 0.5
    #: In a stream without B-frames, a candidate P-frame whose moved area (not predicted in place by a zero decoded
    #: motion vector) is at most this fraction of its neighbours' repeats the frame before it, coding noise or
    #: not, dip in score or not (dimensionless; 0 turns the rule off; docs/detection.md, "The decoder's motion
    #: vectors").
    vector_dip: float = 0.4
    #: A frame the dip tests take for a repeat is one only if, on the way from the frame before its run to the
    #: frame after it, it steps at most this fraction of the way beyond the frame before it: a repeat stays where
    #: its original was, while a real frame that barely moves still moves along the motion (dimensionless; 0 turns
    #: the test off; docs/detection.md, "The position test").
    position_cut: float = 0.045
    #: The same test's cut for a frame its decoded motion vectors call a repeat (vector_dip): a fast encoder moves
    #: such repeats up to 0.10 of the way along the motion, while real frames in motion sit at 0.3 and beyond
    #: (dimensionless; docs/detection.md, "The vectors judged at the fixed point").
    vector_position_cut: float = 0.2
    #: Pass 1 scores grey frames averaged over blocks of this many pixels a side (every score and threshold above
    #: is per pixel of that picture): averaging removes most of the noise a fast encoder re-codes a repeated frame
    #: with, and little of the motion; one block size did best from 176x144 to 1280x720 (pixels).
    score_block: int = 4
    # --- timing (retime.timing) ------------------------------------------------------------------------------
    #: An interval of at least this many nominal frame intervals is a timestamp gap (intervals): half way between
    #: one interval (no frame missing) and two (one missing), so jitter of up to half an interval is not a gap.
    gap_threshold: float = 1.5
    #: An interval within this many nominal intervals of a whole number of them is "on the grid" (intervals):
    #: holds a time base's rounding (23.976 fps in 1/1000: +-0.02) and capture jitter, not a second rate.
    grid_tolerance: float = 0.25
    #: Share of the intervals that must be on the grid for a timeline to be CFR with gaps; under it the stream is
    #: irregular VFR (mixed rates), whose long intervals are not counted as missing frames (dimensionless).
    min_on_grid: float = 0.9
    #: Fewest repeats on a regular pattern for a cadence (frames): two would be any pair of drops.
    cadence_min_repeats: int = 3
    #: Smallest regularity (pattern slots that are found repeats, over slots and repeats together) for a cadence:
    #: leaves room for a repeat hidden in a still shot or a real drop beside the pattern (dimensionless).
    cadence_min_regularity: float = 0.8
    # --- output encoding (retime.media.encode) --------------------------------------------------------------
    crf: int = 18
    preset: str = "medium"
    # --- interpolation (retime.interpolate) -----------------------------------------------------------------
    device: str = "auto"
    #: RIFE's resolution knob: 1.0 for up to 1080p, 0.5 for 4K (the flow is estimated at half resolution).
    scale: float = 1.0
    #: The scale values the network runs at. Its blocks resize by 16/scale ... 1/scale and back; with a factor that
    #: is not a power of two the sizes do not come back (0.75 at 340 pixels wide: 341), which fails in the reference
    #: implementation as it did here, so only these are accepted (2: finer flow for small frames; 8K: 0.25).
    scale_choices: tuple[float, ...] = (2.0, 1.0, 0.5, 0.25, 0.125)

    def check_scale(self, scale: float | None) -> None:
        """Raise :class:`~retime.errors.UsageError` unless ``scale`` is ``None`` (automatic) or in
        :attr:`scale_choices`."""
        if scale is not None and scale not in self.scale_choices:
            choices = ", ".join(f"{c:g}" for c in self.scale_choices)
            raise UsageError(f"scale (--scale) must be auto or one of {choices} (2 for small frames, 1 up to "
                             f"1440p, 0.5 for 4K, 0.25 for 8K), got {scale:g}")
    #: Flip averaging settings (``Interpolator``'s ``flips``): 0 off, 1 also the left-right mirror of the problem, 2 also
    #: the upside-down one; each mirrored copy is one more estimate.
    flip_choices: tuple[int, ...] = (0, 1, 2)

    def check_flips(self, flips: int | None) -> None:
        """Raise :class:`~retime.errors.UsageError` unless ``flips`` is ``None`` (the preset's) or in
        :attr:`flip_choices`."""
        if flips is not None and (isinstance(flips, bool) or flips not in self.flip_choices):
            raise UsageError(f"flips (--flips) must be 0 (off), 1 (left-right mirror) or 2 (left-right and "
                             f"upside-down mirrors), got {flips!r}")
    #: Upsampling factor when neither --factor nor --fps is given.
    factor: int = 2
    #: The quality preset (``--quality``), see QUALITY_PRESETS.
    quality: str = "balanced"
    # --- chunks (retime.chunks) ------------------------------------------------------------------------------
    #: ``retime chunks plan``'s default chunk length (seconds of output): long enough that a chunk's start-up (a
    #: process, the model's load, a seek) is small beside its work, short enough that a minute-long video already
    #: spreads over a few workers (measured: docs/scale-out.md).
    chunk_seconds: float = 60.0

    def quality_preset(self, name: str) -> QualityPreset:
        """The preset called ``name``. Raises :class:`~retime.errors.UsageError` for an unknown one."""
        if name not in QUALITY_PRESETS:
            raise UsageError(f"unknown quality preset {name!r}: use {', '.join(QUALITY_PRESETS)}")
        return QUALITY_PRESETS[name]


DEFAULTS = Defaults()
