"""Duplicate-frame (dropped-frame) detection and scene-cut detection on per-frame difference scores.

For consecutive frames I_t and I_t+1 the pixel loss is L = sum_x |I_t(x) - I_t+1(x)|, and
frame t+1 is a duplicate ("dropped-frame index") when L <= T, with T depending on the resolution. retime divides
L by the pixel count, so every score and threshold here is a *mean absolute difference per pixel in 8-bit grey
levels* (0-255) and one value works at every resolution: ``L <= T`` is ``score <= threshold`` with
``T = threshold * pixel_count``.

A fixed cut alone does not separate duplicates from slow motion once the video has been compressed: coding noise
lifts true duplicates above the slowest real motion (the scores measured: docs/detection.md, "Why one threshold is
not enough"). So the threshold is a ceiling, and a
duplicate must also be a sharp *dip* against the motion around it. Per score ``s[i]`` (frame i+1 against frame i):

    duplicate  if  s[i] <= floor                                   (identical up to coding noise)
               or  s[i] <= max(threshold, deep_ratio * motion[i])  (small, or a very deep dip)
                   and motion[i] >= min_motion                     (there is motion to dip from)
                   and s[i] <= dip_ratio * motion[i]               (a dip against the neighbourhood)
                   and s[i] <= dip_ratio * the scores just before and just after its run   (a sharp one)

``motion[i]`` is a robust local motion level: the median of the nearest ``window`` scores on each side that are
neither duplicates nor cuts, the larger side taken (:func:`local_motion`); duplicates are found and left out
round after round (:func:`find_duplicates`), so that a compressed freeze is recognised as a whole. A nearly
static shot (all scores low, no dip, or too little motion for a dip to mean anything) has no duplicate; a run of
more than ``max_run`` duplicates is an intentional pause, reported as a freeze and not repaired.

Where the caller gives the decoder's motion vectors (a stream without B-frames, :func:`previous_frame_vectors`),
they can also make a frame a duplicate that the two dip tests miss: a candidate (small or a very deep dip, with
motion to dip from) is one when the share of its area that did not stay in place is at most ``vector_dip`` times
its neighbours'. A fast encoder re-codes a repeat with noise as large as the slowest real motion, but predicts it
from the same place. The vectors never take back a duplicate the scores found.

Scene cuts: a *candidate* is ``s[i] > scene_cut``, or a spike against the neighbourhood (``s[i] >= cut_min`` and
``s[i] >= cut_ratio * expected``, where ``expected`` is the local motion times k+1 right after a run of k
duplicates, because the first frame after a run has moved for k+1 frame intervals). Fast motion makes such
candidates too (a fast pan differs by 40-55 grey levels per frame), so when the caller gives the colour change of
each pair (:func:`colour_change` of two :func:`colour_histogram`, a motion-robust measure: a pan keeps the colours
of the picture, a new shot brings others) a candidate is a cut only if its colour change is at least
``cut_colour``; the others are reported as fast motion and interpolated. A score of at least ``cut_min`` whose
colours change by ``colour_cut`` or more is a cut too, spike or not (a cut between shots of the same brightness).
Nothing is interpolated across a cut.

This module needs numpy only: no torch, no PyAV, no files. Scores come from :func:`frame_difference` on the grey
frames that ``retime.media.decode.iter_luma`` yields, averaged over blocks of :func:`analysis_block` pixels a side
(:func:`block_average`): a fast encoder re-codes a repeated frame with fresh noise, which the average removes while
motion, spread over many pixels, stays (docs/detection.md).

The package's modules: :mod:`._scores` (the measurements), :mod:`._settings` (settings and results),
:mod:`._rules` (the rules above).
"""

from retime.detect._rules import MAX_ROUNDS, MIN_MOTION_SUPPORT, MOTION_REACH, detect, find_duplicates, local_motion
from retime.detect._scores import (ANALYSIS_BLOCK, GRAM_REACH, HISTOGRAM_LEVELS, MIN_SCORED_SIDE, NeighbourGram,
                                   analysis_block, block_average, colour_change, colour_histogram, difference_scores,
                                   frame_difference, previous_frame_vectors, run_positions)
from retime.detect._settings import Detection, DetectionSettings, DuplicateRun, SceneCut

__all__ = ["ANALYSIS_BLOCK", "Detection", "DetectionSettings", "DuplicateRun", "GRAM_REACH", "HISTOGRAM_LEVELS",
           "MAX_ROUNDS", "MIN_MOTION_SUPPORT", "MIN_SCORED_SIDE", "MOTION_REACH", "NeighbourGram", "SceneCut",
           "analysis_block", "block_average", "colour_change", "colour_histogram", "detect", "difference_scores",
           "find_duplicates", "frame_difference", "local_motion", "previous_frame_vectors", "run_positions"]
