"""What the pipeline's stages hand each other: the interpolator they need and the progress callback they call."""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

import numpy as np

__all__ = ["FrameInterpolator", "Progress"]


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
