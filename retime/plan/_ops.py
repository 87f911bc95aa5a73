"""The two operations an output frame can be (:class:`Copy`, :class:`Synth`) and what both plans share for
streaming (:class:`_Streaming`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union


@dataclass(frozen=True)
class Copy:
    """The output frame is source frame ``source``, unchanged."""

    source: int

    def needs(self) -> tuple[int, ...]:
        return (self.source,)

    def to_dict(self) -> dict[str, Any]:
        return {"op": "copy", "source": self.source}


@dataclass(frozen=True)
class Synth:
    """The output frame is synthesized between source frames ``left`` < ``right`` at time ``t`` in (0, 1).

    ``t`` is the fraction of the way from ``left`` to ``right`` (0 would be ``left``, 1 ``right``):
    ``t = (t3 - t1) / (t2 - t1)`` for frame times ``t1 < t3 < t2``.

    Raises:
        ValueError: ``left >= right`` or ``t`` outside (0, 1).
    """

    left: int
    right: int
    t: float

    def __post_init__(self) -> None:
        if not 0 <= self.left < self.right:
            raise ValueError(f"Synth: need 0 <= left < right, got left={self.left}, right={self.right}")
        if not 0.0 < self.t < 1.0:
            raise ValueError(f"Synth: t must be in (0, 1), got {self.t!r}")

    def needs(self) -> tuple[int, ...]:
        return (self.left, self.right)

    def to_dict(self) -> dict[str, Any]:
        return {"op": "synth", "left": self.left, "right": self.right, "t": self.t}


Op = Union[Copy, Synth]


def op_from_dict(data: dict[str, Any]) -> Op:
    """Inverse of ``Copy.to_dict`` / ``Synth.to_dict``. Raises ValueError on an unknown ``op``."""
    if data["op"] == "copy":
        return Copy(int(data["source"]))
    if data["op"] == "synth":
        return Synth(int(data["left"]), int(data["right"]), float(data["t"]))
    raise ValueError(f"unknown plan op {data['op']!r}; expected 'copy' or 'synth'")


class _Streaming:
    """Window bookkeeping shared by both plans; subclasses provide ``frames`` (a tuple of ops in output order)."""

    frames: tuple[Op, ...]

    def __len__(self) -> int:
        return len(self.frames)

    def needs(self, j: int) -> tuple[int, ...]:
        """Source frame indices that output frame ``j`` needs (one for a copy, two for a synthesized frame)."""
        return self.frames[j].needs()

    def keep_from(self, j: int) -> int:
        """The lowest source index that output frames ``j, j + 1, ...`` still need; the renderer may release
        every source frame below it once output ``j - 1`` is written. Past the end, the source frame count."""
        return self._keep_from()[j] if j < len(self.frames) else self._n_source()

    @property
    def max_lookahead(self) -> int:
        """The most source frames a streaming renderer must hold at once (a window, first to last inclusive):
        ``max_j(max(needs(j)) - keep_from(j) + 1)``. 1 when every output is a copy; ``k + 2`` for a repaired
        run of k duplicates (its left frame, the k duplicates it decodes past, its right frame); 2 for upsampling."""
        keep = self._keep_from()
        return max((max(op.needs()) - keep[j] + 1 for j, op in enumerate(self.frames)), default=0)

    @property
    def synthesized(self) -> int:
        """Number of output frames that are synthesized."""
        return sum(isinstance(op, Synth) for op in self.frames)

    def _keep_from(self) -> list[int]:
        cache = self.__dict__.get("_keep_cache")
        if cache is None:
            cache = [0] * len(self.frames)
            low = self._n_source()
            for j in range(len(self.frames) - 1, -1, -1):
                low = min(low, min(self.frames[j].needs()))
                cache[j] = low
            object.__setattr__(self, "_keep_cache", cache)  # frozen dataclass: a private memo is fine
        return cache

    def _n_source(self) -> int:
        raise NotImplementedError
