"""``retime chunks join``: the chunks' packets muxed in order into the one output, with the input's audio,
subtitles and other streams copied once (the same writer as an unchunked run), written atomically with its report."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from retime.chunks._manifest import ChunkPlan
from retime.chunks._packets import read_packets
from retime.errors import EXIT_SOME_FAILED, InputError, RetimeError

__all__ = ["ChunksNotDone", "join_chunks"]


class ChunksNotDone(RetimeError):
    """Some chunks are not done (or failed): the join writes nothing (exit code 6)."""

    exit_code = EXIT_SOME_FAILED


def join_chunks(manifest: str | Path, *, report: str | Path | None = None, progress=None) -> dict[str, Any]:
    """Join the chunks of the plan at ``manifest`` into its output; return the report (the ``--report`` JSON).

    Every chunk must be done; the frame count of each is checked against the plan, and its encoder's header
    against the output's (chunks from another encoder build would not decode as one stream).

    Raises:
        ChunksNotDone: chunks are missing (their indices in the message).
        InputError: the input or a chunk cannot be read, or the input changed since the plan.
        OutputError: as a fix-drops run's output (exists without overwrite, folder, disk full).
    """
    from retime.media.encode import EncodeSettings, VideoWriter, atomic_output
    from retime.media.probe import probe

    started = time.monotonic()
    sheet = ChunkPlan.load(manifest)
    data = sheet.data
    missing = sheet.unfinished()
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (", ..." if len(missing) > 20 else "")
        raise ChunksNotDone(f"{sheet.path}: {len(missing)} of {len(data['chunks'])} chunks are not done ({shown}); "
                            f"run `retime chunks run {sheet.path} --index I` for each")
    sheet.check_input()
    markers = [sheet.done_marker(c.index) for c in sheet.chunks]
    info = probe(data["input"])
    encode = EncodeSettings(codec=data["encode"]["codec"], crf=data["encode"]["crf"], preset=data["encode"]["preset"])
    output = Path(data["output"])
    with atomic_output(output, input=data["input"], overwrite=data["overwrite"]) as staged:
        writer = VideoWriter(staged.path, info, settings=encode, time_base=sheet.time_base, rate=sheet.rate,
                             label=output)
        try:
            done = 0
            for chunk in sheet.chunks:
                count = 0
                for header, packet in read_packets(sheet.chunk_file(chunk.index)):
                    if count == 0 and header["extradata"] != writer.extradata:
                        raise InputError(f"{sheet.chunk_file(chunk.index)}: encoded by another {encode.codec} "
                                         f"build or settings than this join's (its stream header differs); run "
                                         f"the chunk again here")
                    writer.write_packet(packet)
                    count += 1
                if count != chunk.end - chunk.first:
                    raise InputError(f"{sheet.chunk_file(chunk.index)}: {count} frames, the plan says "
                                     f"{chunk.end - chunk.first}; run the chunk again")
                done += count
                if progress is not None:
                    progress("join", done, len(data["frames"]))
        except BaseException:
            writer.abort()
            raise
        writer.close()
        result = dict(data["report"])
        devices = sorted({m.get("device") for m in markers if m.get("device")})
        result.update(frames_out=writer.frames_written, notes=list(writer.notes),
                      device=devices[0] if len(devices) == 1 else (", ".join(devices) or None),
                      seconds=round(data["report"]["seconds"] + sum(m["seconds"] for m in markers)
                                    + time.monotonic() - started, 3),
                      chunks={"count": len(markers), "chunk_seconds": data["chunk_seconds"],
                              "plan_seconds": data["report"]["seconds"],
                              "starts": [c.at for c in sheet.chunks],
                              "seconds": [m["seconds"] for m in markers],
                              "join_seconds": round(time.monotonic() - started, 3)})
        if report is not None:
            staged.attach(report, (json.dumps(result, indent=2) + "\n").encode())
    return result
