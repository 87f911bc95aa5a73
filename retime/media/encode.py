"""Writing the output, the public face of three private modules: :class:`VideoWriter` (``_writer``) encodes the
video stream and copies every other stream untouched; :func:`atomic_output` (``_output``) makes the file appear at
its path only when it is complete; the encoder and pixel format are chosen in ``_codecs``.
"""

# Besides the public face (__all__), the names the CLI, the benchmark and the tests import from here.
from retime.media._codecs import (CODEC_ALIASES, CODEC_NAMES, CONTAINER_DEFAULTS, PRESETS, EncodeSettings,  # noqa: F401
                                  choose_encoder, choose_pix_fmt, fitting_codecs, header_fits, muxer_for)
from retime.media._output import (TEMP_NAME, StagedOutput, atomic_output, check_output_path,  # noqa: F401
                                  remove_stale_temporaries, temp_path_for, write_atomically)
from retime.media._writer import VideoWriter

__all__ = [
    "EncodeSettings",
    "VideoWriter",
    "atomic_output",
    "check_output_path",
    "choose_encoder",
    "choose_pix_fmt",
    "temp_path_for",
]
