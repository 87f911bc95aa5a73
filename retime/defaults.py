"""The one source of truth for retime's defaults, shared by the library API, the CLI and the benchmark.

Each value has a unit and a reason. Change a default here and both the CLI's ``--help`` and the API follow.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Defaults:
    # --- detection (retime.detect) -------------------------------------------------------------------------
    #: Duplicate threshold, as a mean absolute difference per pixel in 8-bit grey levels (0-255) between a frame
    #: and the one before it. The L1 loss of the design documents, sum_x |I_t(x) - I_t+1(x)|, is compared with
    #: threshold * pixel_count, so one value works at every resolution. Chosen by measurement: docs/detection.md.
    threshold: float = 0.5
    #: A run of more than this many consecutive duplicates is an intentional freeze and is kept (frames).
    max_run: int = 3
    #: Scene-cut threshold: mean absolute grey-level difference above which two consecutive frames are treated as
    #: belonging to different shots, so that nothing is interpolated across them (grey levels).
    scene_cut: float = 40.0
    # --- output encoding (retime.media.encode) --------------------------------------------------------------
    crf: int = 18
    preset: str = "medium"
    # --- interpolation (retime.interpolate) -----------------------------------------------------------------
    device: str = "auto"
    #: RIFE's resolution knob: 1.0 for up to 1080p, 0.5 for 4K (the flow is estimated at half resolution).
    scale: float = 1.0
    #: Upsampling factor when neither --factor nor --fps is given.
    factor: int = 2


DEFAULTS = Defaults()
