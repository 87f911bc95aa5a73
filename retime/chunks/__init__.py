"""Chunks: one long video rendered in parts on many cores or machines, and joined into the output an unchunked run
would write.

The plan is made once for the whole video (pass 1, the plan, the model settings the flow-scale search chooses, so
every chunk uses the same ones) and cut at scene cuts, or inside long scenes at keyframes, into chunks of about
``--chunk-seconds`` (:mod:`._split`). It goes into a manifest written once (:mod:`._manifest`, :mod:`._plan`). Each
chunk seeks to the keyframe at or before its first source frame, renders its output frames with pass 2's renderer
and commits its encoded packets and then a done marker, each atomically (:mod:`._seek`, :mod:`._render`,
:mod:`._packets`), so many workers share the manifest without rewriting it. The join muxes the packets in order with
the input's other streams, copied once, into the output (:mod:`._join`). One command does all three in an executor
(:mod:`._run`); ``retime chunks plan|run|join`` does them as separate jobs (job arrays: docs/scale-out.md).
"""

from retime.chunks._join import ChunksNotDone, join_chunks
from retime.chunks._manifest import ChunkPlan
from retime.chunks._plan import Planned, plan_chunks
from retime.chunks._render import render_chunk, run_chunk
from retime.chunks._run import run_chunked, work_folder
from retime.chunks._split import CHUNK_SECONDS, Chunk, keyframes, split

__all__ = ["CHUNK_SECONDS", "Chunk", "ChunkPlan", "ChunksNotDone", "Planned", "join_chunks", "keyframes",
           "plan_chunks", "render_chunk", "run_chunk", "run_chunked", "split", "work_folder"]
