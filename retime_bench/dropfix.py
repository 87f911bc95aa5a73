"""Drop repair: damage a real clip with duplicates at known positions, run the real ``fix-drops``, score the result.

1. The first ``max_frames`` frames of the clip are the truth. At seeded random positions (about 5 % of the frames,
   in runs of 1, 2 or 3) a frame is replaced by a copy of the frame before it (:func:`damage_positions`).
2. The damaged frames are encoded losslessly (FFV1 in Matroska; the audio packets of the same span are copied when
   the clip has audio) or with libx264 at a CRF (MP4), with plain PyAV, not with the code under test.
3. :func:`retime.pipeline.fix_drops` repairs it — lossless output (FFV1) for a lossless input, the default encoder
   settings otherwise — and the same file is also decoded and re-encoded plainly with the same encoder settings
   (:func:`reencode`: the floor that fix-drops is compared with).
4. Measured: detection precision and recall (frames retime replaced against the damaged positions; also what it
   merely detected), PSNR of the repaired frames against the true frames next to the duplicate left as it is (the
   floor), whether untouched frames stayed unchanged (bit-exact for lossless output; otherwise PSNR against the
   damaged input, next to the plain re-encode's), frame count, duration and audio.
"""

from __future__ import annotations

import logging

import math
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from retime_bench.clipio import iter_video_frames, reencode
from retime_bench.metrics import Agreement, Scores, json_number, mean_or_nan, psnr
from retime.errors import InputError
from retime.media import EncodeSettings, iter_frames, probe
from retime.plan import Synth

log = logging.getLogger(__name__)

__all__ = ["DROP_FRACTION", "RUN_LENGTHS", "damage_positions", "write_damaged", "reencode", "dropfix"]

#: Share of frames replaced by duplicates (the protocol's "about 5 %").
DROP_FRACTION = 0.05
#: Run lengths drawn for each damaged spot, uniformly: single drops are the commonest, some runs of 2 or 3.
RUN_LENGTHS = (1, 1, 2, 3)
#: Distinct frames kept between two runs, so that runs never merge into a longer one (frames).
MIN_GAP = 3
#: A source frame this close to the one before it (PSNR over RGB, dB) already was a duplicate before the bench
#: damaged anything (real clips have them: frame-rate conversions, a held title card); replacing it is not a false
#: positive. 40 dB is far above what consecutive frames of moving footage reach, and below coding noise.
SOURCE_DUPLICATE_PSNR = 40.0




def damage_setup(clip: Path, task: str, *, max_frames: int | None, fraction: float, seed: int,
                 crf: int | None) -> tuple[int, list[int], str]:
    """What the dropfix and gaps tasks start from: the frames used (``max_frames`` of ``clip``, at most), the seeded
    positions to damage (:func:`damage_positions`) and the input encoding's label.

    Raises:
        InputError: fewer than 3 frames.
    """
    with av.open(str(clip)) as container:  # counted by decoding, as the tasks read them, without an RGB conversion
        n = 0
        for _ in container.decode(video=0):
            n += 1
            if max_frames is not None and n >= max_frames:
                break
    if n < 3:
        raise InputError(f"{clip}: the {task} task needs at least 3 frames")
    encoding = "ffv1 (lossless)" if crf is None else f"libx264 crf {crf}"
    return n, damage_positions(n, fraction=fraction, seed=seed), encoding


def damage_positions(n_frames: int, *, fraction: float = DROP_FRACTION, seed: int = 0) -> list[int]:
    """Indices of the frames to replace by a copy of the frame before them (ascending).

    About ``fraction * n_frames`` frames (at least one run), in runs of :data:`RUN_LENGTHS`, never frame 0, never the
    last frame (a run there has no right neighbour to interpolate towards), runs at least :data:`MIN_GAP` distinct
    frames apart. Deterministic for a given ``seed``.
    """
    if n_frames < 3:
        raise ValueError(f"need at least 3 frames to damage, got {n_frames}")
    rng = np.random.default_rng(seed)
    budget = max(1, round(fraction * n_frames))
    lengths = []
    while sum(lengths) < budget:
        lengths.append(min(int(rng.choice(RUN_LENGTHS)), budget - sum(lengths)))
    taken: set[int] = set()
    out: list[int] = []
    for length in lengths:
        candidates = [s for s in range(1, n_frames - length)  # the run ends before the last frame
                      if not any(abs(s + k - t) < MIN_GAP + 1 for k in range(length) for t in taken)]
        if not candidates:
            break
        start = int(rng.choice(candidates))
        run = range(start, start + length)
        taken.update(run)
        out.extend(run)
    return sorted(out)


def _copy_audio(src_path: Path, out: av.container.OutputContainer, end: Fraction) -> list:
    """Add the source's first audio stream to ``out``; returns its packets before ``end`` seconds, to mux later."""
    with av.open(str(src_path)) as src:
        audio = [s for s in src.streams if s.type == "audio"]
        if not audio:
            return []
        dst = out.add_stream_from_template(audio[0])
        packets = []
        for packet in src.demux(audio[0]):
            if packet.pts is None or not packet.size:
                continue
            if packet.pts * packet.time_base >= end:
                break
            packet.stream = dst
            packets.append(packet)
        return packets


def write_damaged(clip: Path, out_path: Path, positions: list[int], n_frames: int, *, crf: int | None,
                  preset: str = "medium") -> int:
    """Encode the first ``n_frames`` frames of ``clip`` with each frame in ``positions`` replaced by the one before.

    Args:
        crf: ``None`` for lossless FFV1 (``out_path`` should be ``.mkv``), else libx264 at this CRF.

    Returns:
        Frames written. Audio of the same span is copied (packets untouched) when the clip has audio.
    """
    rate = probe(clip).frame_rate
    tick = 1 / rate
    damaged = set(positions)
    count = 0
    with av.open(str(out_path), mode="w") as out:
        options = {"level": "3"} if crf is None else {"crf": str(crf), "preset": preset}
        stream = out.add_stream("ffv1" if crf is None else "libx264", rate=rate, options=options)
        previous = None
        audio_packets = None
        for frame, _ in iter_video_frames(clip, n_frames):
            if audio_packets is None:
                stream.width, stream.height, stream.pix_fmt = frame.width, frame.height, frame.format.name
                stream.time_base = stream.codec_context.time_base = tick
                for attr in ("colorspace", "color_range", "color_primaries", "color_trc"):
                    setattr(stream.codec_context, attr, getattr(frame, attr))
                audio_packets = _copy_audio(clip, out, n_frames * tick)
            use = previous if count in damaged else frame
            previous = use
            encoded = use.reformat(format=use.format.name)  # a fresh frame: the same picture, new timestamps
            encoded.pts, encoded.time_base = count, tick
            encoded.pict_type = av.video.frame.PictureType.NONE
            out.mux(stream.encode(encoded))
            count += 1
        out.mux(stream.encode(None))
        for packet in audio_packets or []:
            out.mux(packet)
    return count


def _audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        audio = [s for s in c.streams if s.type == "audio"]
        return [bytes(p) for p in c.demux(audio[0]) if p.size] if audio else []


def _prf(found: set[int], truth: set[int]) -> dict[str, Any]:
    hit = len(found & truth)
    precision = hit / len(found) if found else (1.0 if not truth else 0.0)
    recall = hit / len(truth) if truth else 1.0
    return {"precision": json_number(precision), "recall": json_number(recall), "true_positives": hit,
            "false_positives": sorted(found - truth), "missed": sorted(truth - found)}


def dropfix(clip: Path, *, crf: int | None = 23, max_frames: int | None = None, seed: int = 0,
            fraction: float = DROP_FRACTION, interpolator=None, workdir: Path | None = None) -> dict[str, Any]:
    """Damage, repair and score one clip at one encoding (``crf=None``: lossless).

    Args:
        clip: a real video; its first ``max_frames`` frames (all when ``None``) are used.
        crf: libx264 CRF of the damaged input (its output uses retime's default encoder settings), or ``None`` for
            a lossless FFV1 input and output.
        interpolator: injected into :func:`retime.pipeline.fix_drops` (``None``: the pipeline builds its own).

    Returns:
        The ``dropfix`` section of the bench JSON: ``encoding``, ``frames``, ``damaged`` (indices), ``replaced``,
        ``runs`` (the plan's run actions), ``source_duplicates`` (frames that already repeated the one before in
        the clip, :data:`SOURCE_DUPLICATE_PSNR`), ``replaced_vs_damaged`` and ``detected_vs_damaged`` (precision,
        recall, false positives, missed; a source duplicate found is not a false positive) and
        ``replaced_vs_damaged_strict`` (where it is), ``repaired`` (PSNR/SSIM of retime and of the duplicate as-is, dB),
        ``untouched`` (``bit_exact`` or PSNRs, dB), ``frame_count_equal``, ``duration_equal``, ``audio``,
        ``seconds`` (fix-drops wall time), ``reencode_seconds``.
    """
    from retime.pipeline import fix_drops

    started = time.perf_counter()
    n, positions, encoding = damage_setup(clip, "dropfix", max_frames=max_frames, fraction=fraction, seed=seed,
                                          crf=crf)
    lossless = crf is None
    with tempfile.TemporaryDirectory(prefix="retime-bench-", dir=workdir) as tmp:
        ext = ".mkv" if lossless else ".mp4"
        damaged, repaired, plain = (Path(tmp) / f"{name}{ext}" for name in ("damaged", "repaired", "reencoded"))
        write_damaged(clip, damaged, positions, n, crf=crf)
        log.info(f"dropfix {clip.name} ({encoding}): {len(positions)} duplicates in {n} frames; running fix-drops")
        settings = EncodeSettings(codec="ffv1") if lossless else EncodeSettings()
        result = fix_drops(damaged, repaired, encode=settings, interpolator=interpolator, overwrite=True)
        t0 = time.perf_counter()
        reencode(damaged, plain, settings)
        reencode_seconds = time.perf_counter() - t0
        log.info(f"dropfix {clip.name} ({encoding}): scoring")
        replaced = {j for j, op in enumerate(result.plan.frames) if isinstance(op, Synth)}
        detected = set(result.analysis.detection.duplicates)
        damaged_set = set(positions)

        ours, floor = Scores(), Scores()
        untouched_exact = 0
        untouched_ours, untouched_plain, ours_vs_plain = [], [], Agreement()
        streams = zip(iter_video_frames(clip, n), iter_frames(damaged), iter_frames(repaired), iter_frames(plain))
        source_dups: set[int] = set()
        previous = None
        for i, ((_, truth), d_in, d_out, d_plain) in enumerate(streams):
            if previous is not None and psnr(truth, previous) >= SOURCE_DUPLICATE_PSNR:
                source_dups.add(i)
            previous = truth
            if i in damaged_set:
                ours.add(d_out.rgb, truth)
                floor.add(d_in.rgb, truth)
            elif i not in replaced:
                if lossless:
                    same = all(np.array_equal(a, b) for a, b in zip(_planes(d_in.frame), _planes(d_out.frame)))
                    untouched_exact += int(same)
                else:
                    untouched_ours.append(psnr(d_out.rgb, d_in.rgb))
                    untouched_plain.append(psnr(d_plain.rgb, d_in.rgb))
                    ours_vs_plain.add(d_out.rgb, d_plain.rgb)
        count_out = sum(1 for _ in iter_frames(repaired))
        info_in, info_out = probe(damaged), probe(repaired)
        audio_in, audio_out = _audio_packets(damaged), _audio_packets(repaired)

    untouched_n = n - len(damaged_set | replaced)
    untouched: dict[str, Any] = {"frames": untouched_n}
    if lossless:
        untouched.update(bit_exact=untouched_exact == untouched_n, bit_exact_frames=untouched_exact)
    else:
        untouched.update(psnr_vs_input=json_number(mean_or_nan(untouched_ours)),
                         reencode_psnr_vs_input=json_number(mean_or_nan(untouched_plain)),
                         vs_reencode=ours_vs_plain.to_dict())
    return {
        "source": str(clip), "encoding": encoding, "frames": n, "seed": seed,
        "damaged": positions, "replaced": sorted(replaced), "detected": sorted(detected),
        "runs": [r.to_dict() for r in result.plan.runs],
        "source_duplicates": sorted(source_dups - damaged_set),
        "replaced_vs_damaged": _prf(replaced - (source_dups - damaged_set), damaged_set),
        "replaced_vs_damaged_strict": _prf(replaced, damaged_set),
        "detected_vs_damaged": _prf(detected - (source_dups - damaged_set), damaged_set),
        "repaired": {"retime": ours.to_dict(), "duplicate_as_is": floor.to_dict()},
        "untouched": untouched,
        "frame_count_equal": count_out == n and result.frames_written == n,
        "duration_equal": _same_duration(info_in.duration, info_out.duration),
        "duration_in": _seconds(info_in.duration), "duration_out": _seconds(info_out.duration),
        "audio": ("none in the input" if not audio_in else
                  "copied unchanged" if audio_in == audio_out else
                  f"CHANGED ({len(audio_in)} packets in, {len(audio_out)} out)"),
        "seconds": round(result.seconds, 3), "reencode_seconds": round(reencode_seconds, 3),
        "total_seconds": round(time.perf_counter() - started, 3),
    }


def _planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """The frame's pixel planes exactly as decoded (no conversion, no line padding), for bit-exact comparison."""
    return [frame.to_ndarray()]


def _seconds(value: Fraction | None) -> float | None:
    return None if value is None else round(float(value), 6)


def _same_duration(a: Fraction | None, b: Fraction | None) -> bool | None:
    """Equal to within a millisecond (Matroska stores milliseconds), or ``None`` when a container has none."""
    if a is None or b is None:
        return None
    return math.isclose(float(a), float(b), abs_tol=1e-3)
