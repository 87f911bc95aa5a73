"""Media I/O with PyAV: probe a file, decode it frame by frame, encode the result and copy the other streams."""

from retime.media._colour import rgb_to_frame
from retime.media.decode import DecodedFrame, LumaFrame, iter_frames, iter_luma, to_rgb
from retime.media.encode import EncodeSettings, VideoWriter, atomic_output, check_output_path
from retime.media.probe import StreamInfo, VideoInfo, probe

__all__ = [
    "DecodedFrame",
    "EncodeSettings",
    "LumaFrame",
    "StreamInfo",
    "VideoInfo",
    "VideoWriter",
    "atomic_output",
    "check_output_path",
    "iter_frames",
    "iter_luma",
    "probe",
    "rgb_to_frame",
    "to_rgb",
]
