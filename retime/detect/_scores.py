"""The measurements detection works on: the grey-level difference score of two frames (the design's L1 loss per
pixel) and the colour change of two thumbnails' histograms. numpy only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retime.defaults import DEFAULTS


#: Side of the blocks pass 1 averages grey frames over before scoring them (pixels; ``DEFAULTS.score_block``): one
#: block size for every frame size, because a block that grew with the frame would leave small frames unaveraged,
#: and their fast-encoder noise is as large (docs/detection.md, "Scoring box-averaged luma").
ANALYSIS_BLOCK = DEFAULTS.score_block
#: Fewest rows (or columns) the averaged picture keeps: a smaller frame is scored as it is (thumbnails and test
#: clips; nothing was measured there).
MIN_SCORED_SIDE = 32


def analysis_block(width: int, height: int) -> int:
    """The block side (pixels) pass 1 box-averages a ``width`` x ``height`` grey frame by before scoring it
    (:func:`block_average`): :data:`ANALYSIS_BLOCK`, or 1 where that would leave fewer than
    :data:`MIN_SCORED_SIDE` pixels on the shorter side."""
    return ANALYSIS_BLOCK if min(width, height) >= ANALYSIS_BLOCK * MIN_SCORED_SIDE else 1


def block_average(luma: np.ndarray, block: int) -> np.ndarray:
    """Mean of each ``block`` x ``block`` square of a grey frame, rounded to uint8: the picture detection scores.

    Averaging removes most of the coding noise that a fast encoder (x264 ``ultrafast``) puts into a repeated frame
    and little of the motion, which is spread over many pixels (docs/detection.md, "Scoring box-averaged luma").
    Rows and columns past the last whole block are left out.

    Args:
        luma: ``(H, W)`` uint8 grey levels.
        block: the block's side (pixels, >= 1); 1 returns ``luma`` itself.

    Returns:
        ``(H // block, W // block)`` uint8 grey levels (at least one block in each direction).

    Raises:
        ValueError: ``luma`` is not a 2-D uint8 array at least ``block`` pixels on each side, or ``block < 1``.
    """
    if luma.ndim != 2 or luma.dtype != np.uint8:
        raise ValueError(f"block_average: expected an (H, W) uint8 frame, got {luma.shape} {luma.dtype}")
    if block < 1 or luma.shape[0] < block or luma.shape[1] < block:
        raise ValueError(f"block_average: block {block} does not fit a {luma.shape[1]}x{luma.shape[0]} frame")
    if block == 1:
        return luma
    h, w = luma.shape[0] // block, luma.shape[1] // block
    # Strided slices added in place (faster than reshape-and-sum); sums of up to 16 x 16 samples of 255
    # fit uint16, and rows first keeps the intermediate small.
    acc = np.uint16 if block <= 16 else np.uint32
    picture = luma[:h * block, :w * block]
    rows = picture[0::block].astype(acc)
    for k in range(1, block):
        rows += picture[k::block]
    sums = rows[:, 0::block].copy()
    for k in range(1, block):
        sums += rows[:, k::block]
    area = block * block
    sums += area // 2
    sums //= area
    return sums.astype(np.uint8)


def frame_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference between two frames, in 8-bit grey levels per pixel (and per channel).

    This is the pixel loss ``sum_x |a(x) - b(x)|`` of the module docstring, divided by the number of samples so
    that it does not depend on the resolution.

    Args:
        a, b: ``uint8`` arrays of the same shape, ``(H, W)`` luma or ``(H, W, C)`` (e.g. RGB).

    Returns:
        The mean of ``|a - b|`` over all pixels and channels, a float in [0, 255] (grey levels).

    Raises:
        ValueError: the shapes differ (the message names both), an array is empty or not 2-D/3-D, or the dtype is
            not ``uint8``.
    """
    if a.shape != b.shape:
        raise ValueError(f"frame_difference: frames differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3) or a.size == 0:
        raise ValueError(f"frame_difference: expected a non-empty (H, W) or (H, W, C) frame, got shape {a.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"frame_difference: expected uint8 frames, got {a.dtype} and {b.dtype}")
    # |a - b| = max(a, b) - min(a, b) stays in uint8 without overflow: one byte per sample, no int16 or float
    # copies of a large frame (docs/performance.md, "Notes from the code").
    d = np.maximum(a, b)
    d -= np.minimum(a, b)
    return float(d.sum(dtype=np.uint64)) / d.size


#: Levels per channel of :func:`colour_histogram` (8 x 8 x 8 = 512 colours): coarse enough that motion and coding
#: noise move few pixels to another bin, fine enough that two shots of similar brightness differ.
HISTOGRAM_LEVELS = 8


def colour_histogram(rgb: np.ndarray) -> np.ndarray:
    """Joint RGB histogram of a (small) frame, normalised to sum 1: the frame's colours, wherever they are.

    Args:
        rgb: ``(H, W, 3)`` uint8 RGB (pass 1 uses a thumbnail about 96 pixels across: the histogram needs no detail).

    Returns:
        A float64 array of ``HISTOGRAM_LEVELS ** 3`` bin fractions (dimensionless, summing to 1).

    Raises:
        ValueError: not a non-empty ``(H, W, 3)`` uint8 array.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0 or rgb.dtype != np.uint8:
        raise ValueError(f"colour_histogram: expected a non-empty (H, W, 3) uint8 frame, got {rgb.shape} {rgb.dtype}")
    shift = 8 - int(np.log2(HISTOGRAM_LEVELS))
    q = (rgb >> shift).astype(np.intp)
    index = (q[..., 0] * HISTOGRAM_LEVELS + q[..., 1]) * HISTOGRAM_LEVELS + q[..., 2]
    counts = np.bincount(index.ravel(), minlength=HISTOGRAM_LEVELS ** 3)
    return counts / counts.sum()


def colour_change(a: np.ndarray, b: np.ndarray) -> float:
    """How much the colours of two frames differ: the share of pixels whose colour must change to turn histogram
    ``a`` into ``b`` (total variation distance, ``sum |a - b| / 2``), in [0, 1]; 0 for the same colours.

    Fast motion keeps most of a picture's colours, a cut to another shot changes many (the values measured on
    real and synthetic footage: docs/detection.md, "Scene cuts").

    Raises:
        ValueError: the histograms differ in shape.
    """
    if a.shape != b.shape:
        raise ValueError(f"colour_change: histograms differ in shape: {a.shape} vs {b.shape}")
    return float(np.abs(a - b).sum()) / 2


#: Frames apart whose products :class:`NeighbourGram` keeps: the position test (:func:`run_positions`) needs the
#: frames from the one before a run to the one after it, so runs of up to ``GRAM_REACH - 1`` frames are tested.
GRAM_REACH = 8


class NeighbourGram:
    """Exact inner products <B_t, B_t+k> (k = 0 .. :data:`GRAM_REACH`) of the box-averaged grey frames, streamed.

    The position of a frame between two others (:func:`run_positions`) needs only these products, so pass 1 keeps
    a few numbers per frame instead of the frames. Products are taken in float64, exact for integer samples while
    a frame's sum of squares stays under 2**53 (a uint8 picture of up to 1.3e11 samples).

    Use: :meth:`add` each frame in order, then :meth:`array`.
    """

    def __init__(self, reach: int = GRAM_REACH) -> None:
        self.reach = reach
        self._shape: tuple[int, ...] = ()
        self._ring: np.ndarray | None = None  # (reach + 1, h*w) float64: the latest frames, frame n in row n % size
        self._rows: list[np.ndarray] = []

    def add(self, frame: np.ndarray) -> None:
        """Append a ``(h, w)`` uint8 frame (every frame the same shape).

        Raises:
            ValueError: the frame is not uint8, or its shape differs from the first frame's.
        """
        n = len(self._rows)  # this frame's index
        if frame.dtype != np.uint8:  # the products are exact for integer samples only
            raise ValueError(f"NeighbourGram.add: frame {n} is {frame.dtype}, not uint8")
        if self._ring is None:
            self._shape = frame.shape
            self._ring = np.empty((self.reach + 1, frame.size), np.float64)
        elif frame.shape != self._shape:
            raise ValueError(f"NeighbourGram.add: frame {n} is {frame.shape}, the first was {self._shape}")
        size = self.reach + 1
        slot = self._ring[n % size]
        slot[:] = frame.ravel()
        # one matrix-vector product with every frame kept: BLAS, and exact (integer products, sums below 2**53)
        dots = np.rint(self._ring[:min(n + 1, size)] @ slot).astype(np.int64)
        row = np.zeros(size, np.int64)
        row[0] = dots[n % size]
        self._rows.append(row)
        for k in range(1, min(n, self.reach) + 1):  # <B_n-k, B_n>: row n - k, column k
            self._rows[n - k][k] = dots[(n - k) % size]

    def array(self) -> np.ndarray:
        """``(n, reach + 1)`` int64: entry ``[t, k]`` is <B_t, B_t+k> (0 where t + k is past the last frame)."""
        return np.array(self._rows, np.int64).reshape(-1, self.reach + 1)


def run_positions(gram: np.ndarray, first: int, last: int) -> np.ndarray:
    """Where each frame of ``first .. last`` sits on the way from frame ``first - 1`` (P) to ``last + 1`` (S).

    tau_t = <B_t - B_P, B_S - B_P> / |B_S - B_P|^2 (docs/detection.md, "The position test"): the projection of a
    frame's change from P onto the change from P to S, as a fraction of it. A repeat of P sits at 0 (its coding
    noise lies mostly across the motion); even motion puts the frames of a run at 1/(k+1), 2/(k+1), ...

    Args:
        gram: ``(n, R + 1)`` int64 from :class:`NeighbourGram`.
        first, last: frame indices, ``1 <= first <= last <= n - 2``, with ``last - first + 2 <= R``.

    Returns:
        ``(last - first + 1,)`` float64; NaN where P and S are identical (no direction to sit on).

    Raises:
        ValueError: ``first > last``, or the frames are out of range or further apart than the gram reaches.
    """
    p, s = first - 1, last + 1
    if first > last:
        raise ValueError(f"run_positions: an empty run, frames {first}..{last}")
    if p < 0 or s >= gram.shape[0] or s - p >= gram.shape[1]:
        raise ValueError(f"run_positions: frames {p}..{s} are outside a gram of {gram.shape[0]} frames "
                         f"reaching {gram.shape[1] - 1}")

    def dot(i: int, j: int) -> int:
        i, j = min(i, j), max(i, j)
        return int(gram[i, j - i])

    span = dot(s, s) - 2 * dot(p, s) + dot(p, p)  # |B_S - B_P|^2, exact in integers
    out = np.full(last - first + 1, np.nan)
    if span > 0:
        for m, t in enumerate(range(first, last + 1)):
            out[m] = (dot(t, s) - dot(t, p) - dot(p, s) + dot(p, p)) / span
    return out


def difference_scores(frames: Sequence[np.ndarray]) -> list[float]:
    """Scores of consecutive frames: ``scores[i] = frame_difference(frames[i], frames[i + 1])``.

    ``n`` frames give ``n - 1`` scores (grey levels). Convenience for tests and small inputs; the pipeline computes
    the scores while streaming, one frame pair at a time.
    """
    return [frame_difference(frames[i], frames[i + 1]) for i in range(len(frames) - 1)]


def previous_frame_vectors(picture_types: Sequence[str], shares: Sequence[float | None]) -> np.ndarray | None:
    """The decoder's motion-vector shares that :func:`detect` may use, or ``None`` for a stream where it may not.

    In a stream without B-frames every P-frame is predicted from pictures before it, so a share of zero means the
    frame repeats what came before (``retime.media.decode.motion_vector_share``). With B-frames a repeat may be
    coded from any reference and its vectors say nothing of the frame before it (docs/detection.md, "Four more
    cues"), so such a stream gives ``None``.

    Args:
        picture_types: each frame's picture type, in presentation order (``"I"``, ``"P"``, ``"B"``, ...).
        shares: each frame's share of moved area in [0, 1], ``None`` where it has none (I-frames).

    Returns:
        ``(n - 1,)`` float64: entry ``i`` is frame ``i + 1``'s share (aligned with the scores), NaN where unknown;
        or ``None`` if any frame is a B-frame or no frame has a share.

    Raises:
        ValueError: the two sequences differ in length.
    """
    if len(picture_types) != len(shares):
        raise ValueError(f"previous_frame_vectors: {len(picture_types)} picture types for {len(shares)} shares")
    if "B" in picture_types or all(s is None for s in shares):
        return None
    return np.array([np.nan if s is None else float(s) for s in shares[1:]], dtype=np.float64)
