"""Training data for the refinement stage: triplets mined from image folders and videos, consistent augmentation,
and a cache of the frozen first stage's outputs.

A triplet is (I_0, I_t, I_1) with I_t the true frame at t = 0.5. Image folders are recognised by their file names
(:data:`LAYOUTS`: the UCF101/DVF layout ``frame_00.png, frame_01_gt.png, frame_02.png``, Middlebury's
``frame10.png, frame10i11.png, frame11.png``, Vimeo-90K's ``im1.png, im2.png, im3.png``); videos give consecutive
frame triplets (i, i+1, i+2) every ``stride`` frames, skipping duplicated frames and scene cuts.

Because IFNet is frozen, its outputs for a triplet never change: :func:`build_cache` runs it once per triplet (on a
fixed crop, at t = 0.5) and stores I_0, I_t, I_1, Î_t, the fusion mask and the two second flows. Training then only
runs the small refinement network, on random crops of the cached tensors, with flips and temporal reversal applied
consistently to every tensor of a sample (flows change sign with the flip; reversal swaps the frames and the flows
and turns M into 1 − M).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from retime.errors import InputError
from retime_bench.clipio import TRIPLET_LAYOUTS, iter_video_frames, read_image
from retime_bench.clipio import load_triplet as load_triplet_folder

__all__ = ["FLOW_KEYS", "IMAGE_KEYS", "LAYOUTS", "MAX_MOTION", "MIN_MOTION", "Triplet", "VIDEO_SUFFIXES", "augment",
           "build_cache", "first_stage_sample", "fixed_crop", "load_cached", "load_triplet", "mine_triplets",
           "to_tensor"]

#: Image-triplet layouts: (first frame, true middle frame, last frame) file names inside one folder; the
#: benchmark's, so that training and measurement read the same folders the same way.
LAYOUTS = TRIPLET_LAYOUTS
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v")
#: Video triplets whose consecutive frames differ by less than this (mean absolute difference, 8-bit grey levels)
#: hold a duplicated frame: the middle frame is not the frame at t = 0.5.
MIN_MOTION = 0.5
#: ... and by more than this, a scene cut (same value as DEFAULTS.scene_cut).
MAX_MOTION = 40.0


@dataclass(frozen=True)
class Triplet:
    """One training triplet: three image files, or three frame indices of one video (``paths`` has one entry)."""

    paths: tuple[str, ...]
    indices: tuple[int, int, int] | None = None

    @property
    def name(self) -> str:
        if self.indices is None:
            return str(Path(self.paths[0]).parent)
        return f"{self.paths[0]}#{self.indices[0]}"


def _read_image(path: str | Path) -> np.ndarray:
    return read_image(Path(path))


def _video_frames(path: Path) -> list[np.ndarray]:
    return [rgb for _, rgb in iter_video_frames(Path(path))]


def _grey_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32).mean(-1) - b.astype(np.float32).mean(-1)).mean())


def mine_triplets(sources: list[str | Path], *, stride: int = 3) -> list[Triplet]:
    """Find training triplets under ``sources`` (folders searched recursively, or video files).

    Args:
        sources: image-triplet folders (or their parents) and video files.
        stride: for videos, one triplet (i, i+1, i+2) every ``stride`` frames.

    Returns:
        Triplets in a deterministic (sorted) order.

    Raises:
        InputError: a source does not exist.
    """
    found: list[Triplet] = []
    for source in map(Path, sources):
        if not source.exists():
            raise InputError(f"training data {source} does not exist")
        if source.is_file():
            candidates = [source]
        else:
            candidates = sorted(p for p in source.rglob("*") if p.is_file())
        for path in candidates:
            for first, middle, last in LAYOUTS:
                if path.name == first and (path.parent / middle).is_file() and (path.parent / last).is_file():
                    found.append(Triplet(tuple(str(path.parent / n) for n in (first, middle, last))))
            if path.suffix.lower() in VIDEO_SUFFIXES:
                frames = _video_frames(path)
                for i in range(0, len(frames) - 2, stride):
                    d0 = _grey_difference(frames[i], frames[i + 1])
                    d1 = _grey_difference(frames[i + 1], frames[i + 2])
                    if MIN_MOTION <= min(d0, d1) and max(d0, d1) <= MAX_MOTION:
                        found.append(Triplet((str(path),), (i, i + 1, i + 2)))
    return sorted(found, key=lambda t: (t.paths, t.indices or (0, 0, 0)))


def load_triplet(triplet: Triplet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three frames of a triplet as ``(H, W, 3)`` uint8 RGB arrays (I_0, true I_t, I_1)."""
    if triplet.indices is None:
        folder = load_triplet_folder(Path(triplet.paths[0]).parent)
        return folder.first, folder.truth, folder.last
    frames = _video_frames(Path(triplet.paths[0]))
    return tuple(frames[i] for i in triplet.indices)  # type: ignore[return-value]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 → ``(1, 3, H, W)`` float32 in [0, 1]."""
    return torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float().div(255.0)


#: Keys of a sample that hold images, flows (x, y channels) and the first stage's mask.
IMAGE_KEYS = ("img0", "truth", "img1", "frame")
FLOW_KEYS = ("flow0", "flow1")


def augment(sample: dict[str, torch.Tensor], rng: np.random.Generator, crop: int | None) -> dict[str, torch.Tensor]:
    """Random crop, horizontal/vertical flip and temporal reversal, the same for every tensor of ``sample``.

    Args:
        sample: ``img0``, ``truth``, ``img1`` (and optionally ``frame`` Î_t, ``flow0``/``flow1`` second flows in
            pixels, ``mask`` M), each ``(C, H, W)`` with the same H, W.
        rng: the generator that draws the augmentation.
        crop: side of the square crop (``None``: no crop); must not exceed H or W.

    Returns:
        A new dict with the same keys. Flipping horizontally negates the flows' x channel (vertically: y);
        reversing time swaps ``img0``/``img1`` and ``flow0``/``flow1`` and maps ``mask`` to ``1 − mask``
        (t = 0.5 is its own mirror, so the true frame stays).
    """
    _, height, width = sample["img0"].shape
    out = dict(sample)
    if crop is not None:
        if crop > height or crop > width:
            raise ValueError(f"augment: crop {crop} is larger than the sample ({width}x{height})")
        y = int(rng.integers(0, height - crop + 1))
        x = int(rng.integers(0, width - crop + 1))
        out = {k: v[:, y:y + crop, x:x + crop] for k, v in out.items()}
    if rng.random() < 0.5:
        out = {k: v.flip(-1) for k, v in out.items()}
        for k in FLOW_KEYS:
            if k in out:
                out[k] = out[k] * torch.tensor([-1.0, 1.0], dtype=out[k].dtype).view(2, 1, 1)
    if rng.random() < 0.5:
        out = {k: v.flip(-2) for k, v in out.items()}
        for k in FLOW_KEYS:
            if k in out:
                out[k] = out[k] * torch.tensor([1.0, -1.0], dtype=out[k].dtype).view(2, 1, 1)
    if rng.random() < 0.5:
        out["img0"], out["img1"] = out["img1"], out["img0"]
        if "flow0" in out:
            out["flow0"], out["flow1"] = out["flow1"], out["flow0"]
        if "mask" in out:
            out["mask"] = 1.0 - out["mask"]
    return {k: v.contiguous() for k, v in out.items()}


def fixed_crop(height: int, width: int, size: int, multiple: int, seed: int) -> tuple[int, int, int, int]:
    """A seeded crop window ``(y, x, h, w)`` of at most ``size`` pixels a side, h and w multiples of ``multiple``."""
    h = min(size, height) // multiple * multiple
    w = min(size, width) // multiple * multiple
    if h == 0 or w == 0:
        raise ValueError(f"frame {width}x{height} is smaller than {multiple} pixels")
    rng = np.random.default_rng(seed)
    return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w


@torch.no_grad()
def first_stage_sample(ifnet, img0: np.ndarray, truth: np.ndarray, img1: np.ndarray, *,
                       flow_mode: str) -> dict[str, torch.Tensor]:
    """Run the frozen first stage on one triplet (t = 0.5) and the second flows; H, W multiples of 64.
    Returns a sample dict (see :func:`augment`) of ``(C, H, W)`` tensors: images uint8, ``frame``/``mask``/flows
    float16 (halves the cache; the network computes in float32)."""
    from retime.refine.flow import second_flows

    t0, t1 = to_tensor(img0), to_tensor(img1)
    first = ifnet(t0, t1, 0.5)
    g0, g1 = second_flows(ifnet, first, t0, t1, mode=flow_mode)
    u8 = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)  # noqa: E731
    return {"img0": u8(img0), "truth": u8(truth), "img1": u8(img1), "frame": first.frame[0].half(),
            "mask": first.mask[0].half(), "flow0": g0[0].half(), "flow1": g1[0].half(),
            "first_flow": first.flow[0].half()}


def build_cache(triplets: list[Triplet], ifnet, cache_dir: Path, *, size: int = 256, flow_mode: str = "reuse",
                seed: int = 0, progress=None) -> list[Path]:
    """Cache the first stage's outputs for each triplet on a fixed, seeded crop; one ``.pt`` file per triplet.

    Resumable: files already there are kept. Returns the cache files in the order of ``triplets``.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    multiple = 64
    files = []
    for i, triplet in enumerate(triplets):
        path = cache_dir / f"{i:05d}.pt"
        files.append(path)
        if not path.exists():
            img0, truth, img1 = load_triplet(triplet)
            y, x, h, w = fixed_crop(img0.shape[0], img0.shape[1], size, multiple, seed + i)
            crop = lambda a: a[y:y + h, x:x + w]  # noqa: E731
            sample = first_stage_sample(ifnet, crop(img0), crop(truth), crop(img1), flow_mode=flow_mode)
            sample["name"] = triplet.name  # type: ignore[assignment]
            tmp = path.with_suffix(".tmp")
            torch.save(sample, tmp)
            tmp.replace(path)
        if progress is not None:
            progress(i + 1, len(triplets))
    return files


def load_cached(path: Path) -> dict[str, torch.Tensor]:
    """One cached sample as float32 tensors in [0, 1] (images) / pixels (flows)."""
    raw = torch.load(path, map_location="cpu", weights_only=True)
    return {k: (v.float().div(255.0) if v.dtype == torch.uint8 else v.float())
            for k, v in raw.items() if isinstance(v, torch.Tensor)}
