"""Choose the model's settings on the input itself: rebuild frames the clip already has, keep what rebuilds best.

RIFE's flow scale (and whether ensembling pays) depends on the footage: small or low-resolution frames gain from a
finer flow (scale 2), large motion at 720p from a coarser one (0.5), and no one setting wins on every clip
(docs/quality.md). So each candidate setting rebuilds a few known frames I_i from I_{i-1} and I_{i+1} (t = 0.5)
spread over the clip, and the one with the best mean PSNR against the true I_i is used for the whole run.

A rebuild interpolates across two frame intervals, as fix-drops does for a single repeat; upsample interpolates
across one, where the motion is half as large, so a finer scale can only gain there: when two scales rebuild
within :data:`TIE_DB` of each other, ``prefer_finer`` takes the finer one.

Pure: frames in, a :class:`Choice` out; no files, no CLI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from retime.metrics import psnr

__all__ = ["Candidate", "Choice", "MIN_SAMPLES", "PAIRED_SE", "Trial", "TIE_DB", "choose"]

#: Two candidates whose mean rebuild PSNR differs by at most this (dB) count as a tie.
TIE_DB = 0.05
#: Another candidate replaces the first (the preset's default) only when its mean gain over it on the same rebuilt
#: frames, less this many standard errors of that gain, is positive. Rebuilds are noisy per frame: on five clips
#: the best mean of 4 samples lost more than 0.05 dB to the default on the whole clip in 7 % of searches, with this
#: rule in 1 % (docs/quality.md, "How many rebuilt frames a search needs").
PAIRED_SE = 1.0
#: Fewer rebuilt frames than this and a search is not worth its model calls: with the rule above, one sample can
#: never overturn the default and two gained nothing on average (same page).
MIN_SAMPLES = 3


@dataclass(frozen=True)
class Candidate:
    """One setting: the model (registry name), RIFE's flow ``scale`` (2, 1, 0.5, 0.25, 0.125), ``ensemble`` and
    ``flips`` (mirrored copies averaged: 0, 1 left-right, 2 also upside-down; ``Interpolator``'s)."""

    model: str
    scale: float
    ensemble: bool
    flips: int = 0

    def label(self) -> str:
        flips = {0: "", 1: " + hflip", 2: " + hflip + vflip"}[self.flips]
        return f"{self.model} scale {self.scale:g}{' + ensemble' if self.ensemble else ''}{flips}"

    def to_dict(self) -> dict:
        return {"model": self.model, "scale": self.scale, "ensemble": self.ensemble, "flips": self.flips}


@dataclass(frozen=True)
class Trial:
    """How one candidate rebuilt the samples: mean and per-sample PSNR (dB, RGB 8-bit), seconds per frame."""

    candidate: Candidate
    psnr: float
    per_sample: tuple[float, ...]
    seconds_per_frame: float


@dataclass(frozen=True)
class Choice:
    """The chosen candidate and the evidence: every trial, the source frames that were rebuilt, and whether the
    first candidate was kept against a higher but inconsistent mean."""

    candidate: Candidate
    trials: tuple[Trial, ...]
    frames: tuple[int, ...]
    kept_default: bool = False  # a higher mean did not beat the first candidate consistently (PAIRED_SE)

    def to_dict(self) -> dict:
        return {**self.candidate.to_dict(), "rebuilt_frames": list(self.frames), "kept_default": self.kept_default,
                "trials": [{**t.candidate.to_dict(), "psnr": round(t.psnr, 3),
                            "per_frame": [round(p, 3) for p in t.per_sample],
                            "seconds_per_frame": round(t.seconds_per_frame, 3)} for t in self.trials]}



def choose(engines: Callable[[str], Any], samples: Sequence[tuple[int, np.ndarray, np.ndarray, np.ndarray]],
           candidates: Sequence[Candidate], *, prefer_finer: bool = False) -> Choice:
    """Rebuild each sample with each candidate and return the best, the first unless another beats it clearly.

    The first candidate is the preset's default; another with a higher mean replaces it only when its per-sample
    gain over the first, less :data:`PAIRED_SE` standard errors, stays positive (a paired comparison: the same
    frames, so what the frames share cancels), which one sample never shows.

    Args:
        engines: the :class:`~retime.interpolate.Interpolator` of a model name (its ``interpolate`` takes
            ``scale``, ``ensemble`` and ``flips``); called only for the models that are tried.
        samples: ``(index, previous, frame, next)``: the source frame ``index`` and its neighbours, ``(H, W, 3)``
            uint8 RGB, all from one shot.
        candidates: the settings to try (at least one).
        prefer_finer: among candidates of the best one's model within :data:`TIE_DB` of it, take the one with
            the finest flow (the largest scale), then the cheaper one (without ensembling, fewer flips).

    Returns:
        :class:`Choice`. With one candidate or no samples nothing is run and the first candidate is returned.

    Raises:
        ValueError: no candidates.
    """
    if not candidates:
        raise ValueError("choose: no candidate settings")
    if len(candidates) == 1 or not samples:
        return Choice(candidates[0], (), tuple(s[0] for s in samples))
    trials = []
    for candidate in candidates:
        scores = []
        started = time.perf_counter()
        for _, previous, truth, following in samples:
            out = engines(candidate.model).interpolate(previous, following, [0.5], scale=candidate.scale,
                                                       ensemble=candidate.ensemble, flips=candidate.flips)[0]
            scores.append(min(psnr(out, truth), 100.0))  # identical frames: cap, so that a mean stays finite
        seconds = (time.perf_counter() - started) / len(samples)
        trials.append(Trial(candidate, float(np.mean(scores)), tuple(scores), seconds))
    best = max(trials, key=lambda t: t.psnr)
    kept = False
    if best is not trials[0]:
        gain = np.subtract(best.per_sample, trials[0].per_sample)
        if gain.size < 2 or gain.mean() - PAIRED_SE * gain.std(ddof=1) / np.sqrt(gain.size) <= 0:
            best, kept = trials[0], True
    if prefer_finer:
        close = [t for t in trials if t.psnr >= best.psnr - TIE_DB and t.candidate.model == best.candidate.model]
        best = max(close, key=lambda t: (t.candidate.scale, not t.candidate.ensemble, -t.candidate.flips))
    return Choice(best.candidate, tuple(trials), tuple(s[0] for s in samples), kept)
