"""Timestamp gaps: delete frames of a real CFR clip at known positions, keep the PTS of the rest, run the real
``fix-drops``, score the result (docs/timing.md).

1. The first ``max_frames`` frames of the clip are the truth. At seeded random positions (about 5 % of the frames,
   in runs of 1, 2 or 3: :func:`retime_bench.dropfix.damage_positions`) a frame is deleted; the others keep their
   PTS, so the stream is a VFR capture that dropped frames.
2. Written losslessly (FFV1 in Matroska: a 1 ms time base, so 29.97 fps rounds to 33/34 ms) or with libx264 at a
   CRF (MP4), the audio of the same span remuxed, with plain PyAV.
3. :func:`retime.pipeline.fix_drops` repairs it into FFV1 (Matroska), whatever the input: the output encoder's
   own loss would otherwise sit in every number below (the drop-repair task measures the default encoder).
4. Measured: precision and recall of the gap positions (a gap counts when its frame and its number of missing
   frames are right), the nominal rate found, the frame count, the video's end time and the audio against the
   original clip, kept frames bit-exact with the decoded input, and the PSNR of the filled frames against the deleted truth next
   to the model's own interpolation of the same instants, stored the way the output stores it, from two sets of
   neighbours: the original (undamaged) frames, and the gappy input's own decoded frames. For a lossless input the
   two are the same; for a lossy one the first difference also holds the input's coding loss, and the second is
   what the pipeline's timing and plumbing cost.
"""

from __future__ import annotations

import logging

import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from retime_bench.clipio import iter_video_frames
from retime_bench.dropfix import DROP_FRACTION, _audio_packets, _copy_audio, _prf, damage_setup
from retime_bench.metrics import json_number, mean_or_nan, psnr
from retime.media import EncodeSettings, iter_frames, probe, rgb_to_frame, to_rgb
from retime.plan import Copy

log = logging.getLogger(__name__)

__all__ = ["write_gappy", "gaps"]




def write_gappy(clip: Path, out_path: Path, deleted: list[int], n_frames: int, *, crf: int | None,
                preset: str = "medium") -> list[int]:
    """Encode the first ``n_frames`` frames of ``clip`` without the frames in ``deleted``, each kept frame at its
    original time (PTS ``i / rate``; Matroska rounds to 1 ms). Returns the kept frame indices.

    Args:
        crf: ``None`` for lossless FFV1 (``out_path`` should be ``.mkv``), else libx264 at this CRF (``.mp4``).
    """
    rate = probe(clip).frame_rate
    tick = 1 / rate
    gone = set(deleted)
    kept: list[int] = []
    with av.open(str(out_path), mode="w") as out:
        options = {"level": "3"} if crf is None else {"crf": str(crf), "preset": preset}
        stream = out.add_stream("ffv1" if crf is None else "libx264", rate=rate, options=options)
        audio_packets = None
        for i, (frame, _) in enumerate(iter_video_frames(clip, n_frames)):
            if audio_packets is None:
                stream.width, stream.height, stream.pix_fmt = frame.width, frame.height, frame.format.name
                stream.time_base = stream.codec_context.time_base = tick
                for attr in ("colorspace", "color_range", "color_primaries", "color_trc"):
                    setattr(stream.codec_context, attr, getattr(frame, attr))
                audio_packets = _copy_audio(clip, out, n_frames * tick)
            if i in gone:
                continue
            encoded = frame.reformat(format=frame.format.name)  # a fresh frame: the same picture, its own time
            encoded.pts, encoded.time_base = i, tick
            encoded.pict_type = av.video.frame.PictureType.NONE
            out.mux(stream.encode(encoded))
            kept.append(i)
        out.mux(stream.encode(None))
        for packet in audio_packets or []:
            out.mux(packet)
    return kept


def gaps(clip: Path, *, crf: int | None = 23, max_frames: int | None = None, seed: int = 0,
         fraction: float = DROP_FRACTION, interpolator=None, workdir: Path | None = None) -> dict[str, Any]:
    """Delete frames, repair the gaps and score one clip at one encoding (``crf=None``: lossless).

    Args:
        clip: a real CFR video; its first ``max_frames`` frames (all when ``None``) are used.
        crf: libx264 CRF of the gappy input, or ``None`` for a lossless FFV1 input (the output is FFV1 either
            way).
        interpolator: injected into :func:`retime.pipeline.fix_drops` and used for the reference frames (the
            same model); ``None`` builds the default one.

    Returns:
        The ``gaps`` section of the bench JSON: ``encoding``, ``frames``, ``deleted`` (indices), ``gaps_true`` and
        ``gaps_found`` (``[frame after the gap in the gappy stream, missing]``), ``gaps_vs_true`` (precision,
        recall), ``nominal_rate``, ``kind``, ``frames_out``, ``frame_count_equal``, ``end_equal`` (within a
        millisecond), ``audio``, ``kept`` (``bit_exact``: every copied frame equal to the decoded input's), ``filled`` (PSNR of retime's frames and
        of the model's reference frames against the truth, from the original and from the decoded input's frames, and
        the differences, dB), ``seconds``.
    """
    from retime.pipeline import fix_drops

    started = time.perf_counter()
    n, deleted, encoding = damage_setup(clip, "gaps", max_frames=max_frames, fraction=fraction, seed=seed, crf=crf)
    lossless = crf is None
    if interpolator is None:
        from retime.interpolate import Interpolator

        interpolator = Interpolator()
    with tempfile.TemporaryDirectory(prefix="retime-bench-", dir=workdir) as tmp:
        gappy, repaired = Path(tmp) / ("gappy.mkv" if lossless else "gappy.mp4"), Path(tmp) / "repaired.mkv"
        kept = write_gappy(clip, gappy, deleted, n, crf=crf)
        log.info(f"gaps {clip.name} ({encoding}): {len(deleted)} of {n} frames deleted; running fix-drops")
        settings = EncodeSettings(codec="ffv1")
        result = fix_drops(gappy, repaired, encode=settings, interpolator=interpolator, overwrite=True)
        log.info(f"gaps {clip.name} ({encoding}): scoring")
        truth_gaps: dict[int, int] = {}
        for i in deleted:
            after = next(j for j in kept if j > i)
            truth_gaps[kept.index(after)] = truth_gaps.get(kept.index(after), 0) + 1
        timing = result.analysis.timing
        found = {(g.index, g.missing) for g in timing.gaps}
        truth_frames = [rgb for _, rgb in iter_video_frames(clip, n)]
        outs = list(iter_frames(repaired))
        ins = list(iter_frames(gappy))
        copies = [(j, i) for j, i in enumerate(kept) if i < len(outs) and isinstance(result.plan.frames[i], Copy)]
        exact = sum(int(np.array_equal(outs[i].frame.to_ndarray(), ins[j].frame.to_ndarray())) for j, i in copies)
        ours, reference, decoded_reference = [], [], []
        if len(outs) == n:
            for i in deleted:
                a, b = max(j for j in kept if j < i), min(j for j in kept if j > i)
                out = outs[i].frame
                ours.append(psnr(outs[i].rgb, truth_frames[i]))
                # from the original frames (a lossy input's coding loss included), and from the input's own
                # decoded frames (what retime has to work with: the rest is timing and plumbing)
                for left, right, scores in ((truth_frames[a], truth_frames[b], reference),
                                            (ins[kept.index(a)].rgb, ins[kept.index(b)].rgb, decoded_reference)):
                    made = interpolator.interpolate(left, right, [(i - a) / (b - a)])[0]
                    stored = rgb_to_frame(made, out.format.name, int(out.colorspace or 2), int(out.color_range or 0))
                    scores.append(psnr(to_rgb(stored), truth_frames[i]))
        end_in = Fraction(n) / probe(clip).frame_rate  # the first n frames of a CFR clip
        end_out = _end(repaired)
        audio_in, audio_out = _audio_packets(gappy), _audio_packets(repaired)

    return {
        "source": str(clip), "encoding": encoding, "frames": n, "seed": seed, "deleted": deleted,
        "gaps_true": sorted([k, v] for k, v in truth_gaps.items()), "gaps_found": sorted([k, v] for k, v in found),
        "gaps_vs_true": _prf(found, set(truth_gaps.items())),
        "nominal_rate": str(timing.rate), "kind": timing.kind,
        "frames_out": result.frames_written, "frame_count_equal": result.frames_written == n == len(outs),
        "end_in": round(float(end_in), 6), "end_out": round(float(end_out), 6),
        "end_equal": abs(float(end_out - end_in)) <= 1e-3,
        "audio": ("none in the input" if not audio_in else
                  "copied unchanged" if audio_in == audio_out else
                  f"CHANGED ({len(audio_in)} packets in, {len(audio_out)} out)"),
        "kept": {"frames": len(copies), "bit_exact": exact == len(copies), "bit_exact_frames": exact},
        "filled": {"frames": len(ours), "psnr": json_number(mean_or_nan(ours)),
                   "model_psnr": json_number(mean_or_nan(reference)),
                   "difference_db": json_number(mean_or_nan(ours) - mean_or_nan(reference)),
                   "model_psnr_decoded": json_number(mean_or_nan(decoded_reference)),
                   "difference_decoded_db": json_number(mean_or_nan(ours) - mean_or_nan(decoded_reference))},
        "seconds": round(result.seconds, 3), "total_seconds": round(time.perf_counter() - started, 3),
    }


def _end(path: Path) -> Fraction:
    """The video's end: its last frame's time plus that frame's duration (seconds, from the first frame's time)."""
    from retime.pipeline import analyse

    a = analyse(path)
    return a.end_time - a.times[0]
