"""Frame-quality metrics shared by the flow-scale search, the benchmark and training: one PSNR, one answer."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["psnr"]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two 8-bit images, over every channel: 10·log10(255² / MSE).

    Args:
        a, b: arrays of one shape (e.g. ``(H, W, 3)`` uint8 RGB), values in [0, 255].

    Returns:
        The PSNR in dB; ``inf`` when the images are equal (MSE 0).

    Raises:
        ValueError: the shapes differ.
    """
    if a.shape != b.shape:
        raise ValueError(f"psnr: shapes differ, {a.shape} vs {b.shape}")
    err = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if err == 0 else 10 * math.log10(255.0 ** 2 / err)
