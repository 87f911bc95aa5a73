"""A chunk's file: the encoded video packets of its frames, each with its PTS, DTS, duration and keyframe flag in the
encoder's time base, after a header with the encoder's name, time base and extradata.

Why not a container: each rounds or moves what the join must put back exactly. Matroska stores milliseconds, MP4
shifts the DTS of streams that do not start at zero (edit lists), NUT drops the first packets' DTS. The join muxes
these packets into the one output as the unchunked writer muxes its encoder's, so the output's timestamps are the
same (:meth:`retime.media.encode.VideoWriter.write_packet`).
"""

from __future__ import annotations

import base64
import json
import struct
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Iterator

import av

from retime.errors import InputError

__all__ = ["MAGIC", "PacketFile", "read_packets"]

MAGIC = b"retime-chunk-packets-1\n"
#: pts, dts, duration (time-base ticks), flags (1: keyframe), payload size (bytes)
_RECORD = struct.Struct("<qqqBI")
#: a missing PTS or DTS
_NONE = -(2 ** 63)


class PacketFile:
    """Append a chunk's packets to an open binary file; the header is written with the first packet (the encoder's
    extradata is known then)."""

    def __init__(self, file: BinaryIO, encoder: str) -> None:
        self.file = file
        self.encoder = encoder
        self.count = 0
        self.extradata: bytes | None = None

    def write(self, packet: av.Packet) -> None:
        """Store one encoded packet (its ``time_base`` is the encoder's)."""
        if self.count == 0:
            context = packet.stream.codec_context if packet.stream is not None else None
            self.extradata = bytes(context.extradata or b"") if context is not None else b""
            header = {"encoder": self.encoder, "time_base": str(packet.time_base),
                      "extradata": base64.b64encode(self.extradata).decode()}
            self.file.write(MAGIC + json.dumps(header).encode() + b"\n")
        data = bytes(packet)
        self.file.write(_RECORD.pack(_NONE if packet.pts is None else packet.pts,
                                     _NONE if packet.dts is None else packet.dts, packet.duration or 0,
                                     1 if packet.is_keyframe else 0, len(data)))
        self.file.write(data)
        self.count += 1


def read_header(file: BinaryIO, path: Path) -> dict:
    if file.read(len(MAGIC)) != MAGIC:
        raise InputError(f"{path}: not a retime chunk file (or an older retime's); run the chunk again")
    header = json.loads(file.readline())
    header["extradata"] = base64.b64decode(header["extradata"])
    header["time_base"] = Fraction(header["time_base"])
    return header


def read_packets(path: str | Path) -> Iterator[tuple[dict, av.Packet]]:
    """Yield ``(header, packet)`` for each packet of the chunk file at ``path``, in the order they were encoded.

    Raises:
        InputError: the file is not a chunk file or ends inside a packet.
    """
    path = Path(path)
    with open(path, "rb") as file:
        header = read_header(file, path)
        while True:
            head = file.read(_RECORD.size)
            if not head:
                return
            if len(head) < _RECORD.size:
                raise InputError(f"{path}: the chunk file is truncated; run the chunk again")
            pts, dts, duration, flags, size = _RECORD.unpack(head)
            data = file.read(size)
            if len(data) < size:
                raise InputError(f"{path}: the chunk file is truncated; run the chunk again")
            packet = av.Packet(data)
            packet.pts = None if pts == _NONE else pts
            packet.dts = None if dts == _NONE else dts
            packet.duration = duration
            packet.is_keyframe = bool(flags & 1)
            packet.time_base = header["time_base"]
            yield header, packet
