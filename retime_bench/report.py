"""Turn bench results (the JSON documents of :func:`retime_bench.run.bench`) into tables: rich for the terminal,
Markdown for ``docs/benchmarks.md``.

Tables are plain data first (:class:`Table`: title, header, rows of strings, notes), rendered by
:func:`to_markdown` or :func:`to_rich`. A column whose method did not run shows the reason it gives, never a number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retime_bench.quality import METHODS

__all__ = ["Table", "quality_tables", "dropfix_table", "gaps_table", "speed_tables", "machine_lines", "to_markdown",
           "to_rich", "result_tables"]


#: Column headings of the quality table (the long names are in its notes).
SHORT = {"retime_upsample": "retime upsample", "retime": "retime model", "retime_fast": "retime fast",
         "retime_42": "retime 4.2x", "reference": "reference RIFE",
         "minterpolate": "ffmpeg minterpolate", "average": "average"}


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _num(value: Any, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "–"
    if value == "inf":
        return "∞"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}{unit}"
    return str(value)


def _cell(entry: dict[str, Any] | None) -> str:
    """``PSNR / SSIM`` of one method, or the reason it has no number."""
    if entry is None:
        return "–"
    if not entry.get("available", True):
        return entry.get("reason", "not available")
    return f"{_num(entry.get('psnr'))} / {_num(entry.get('ssim'), 4)}"


def _source_name(result: dict[str, Any]) -> str:
    from pathlib import Path

    q = result
    name = Path(q["source"]).name
    if q.get("kind") == "triplets":
        return f"{name} ({q['items']} triplets, {', '.join(q['size'])})"
    return f"{name} ({q['size'][0]}, {q['rebuilt']} frames rebuilt of {q['frames_used']})"


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.3f}"


def quality_tables(results: list[dict[str, Any]]) -> list[Table]:
    """One table of PSNR / SSIM per source (rows) and method (columns), and one of retime's agreement with the
    reference. ``results`` are quality sections."""
    methods = [m for m in METHODS if any(m in r["methods"] for r in results)]
    table = Table("Interpolation quality: PSNR (dB) / SSIM against the true middle frame, RGB 8-bit, t = 0.5",
                  ["input"] + [SHORT[m] for m in methods])
    for r in results:
        table.rows.append([_source_name(r)] + [_cell(r["methods"].get(m)) for m in methods])
    table.notes.append("Columns: " + "; ".join(f"{SHORT[m]} = {METHODS[m]}" for m in methods) + ".")
    table.notes.append("Videos: every other frame dropped and rebuilt from its neighbours (the even frames kept as a "
                       "lossless FFV1 video at half the rate); triplets: first and last frame in, middle frame is the "
                       "truth. Means over frames (triplets). Higher is better.")
    agree = Table("retime's model (8-bit output) against the reference Practical-RIFE 4.2x's float32 output on the "
                  "same frames (same weights)",
                  ["input", "frames", "worst-frame PSNR (dB)", "pooled PSNR (dB)", "max |difference| (grey levels)",
                   "identical frames", "Δ mean PSNR vs truth (dB)"])
    for r in results:
        a = r.get("retime_vs_reference", {})
        if not a.get("frames"):
            reason = r["methods"].get("reference", {}).get("reason", "not measured")
            agree.rows.append([_source_name(r), "–", reason, "–", "–", "–", "–"])
            continue
        agree.rows.append([_source_name(r), str(a["frames"]), _num(a["psnr_min"]), _num(a["psnr_pooled"]),
                           str(a["max_abs_diff"]), str(a["identical"]), _signed(a.get("truth_psnr_delta"))])
    agree.notes.append("The reference's frame is taken before its engine's 8-bit conversion (which truncates, "
                       "(x * 255).byte()); retime's rounding to 8 bits alone puts a ceiling of about 59 dB on this "
                       "PSNR. Identical frames: every value equal to the rounded reference. Δ mean PSNR vs truth: "
                       "retime's mean PSNR against the true frames minus the reference's, both rounded to 8 bits "
                       "(the quality its faster arithmetic costs). The target is at least 50 dB on every frame "
                       "and a Δ within ±0.02 dB.")
    return [table, agree]


def dropfix_table(results: list[dict[str, Any]]) -> Table:
    """One row per (clip, encoding) drop-repair run."""
    from pathlib import Path

    table = Table("Drop repair (fix-drops): duplicates inserted at seeded random positions, runs of 1-3",
                  ["clip", "input encoding", "frames", "duplicates (+ in the source)", "precision", "recall",
                   "repaired PSNR / SSIM", "duplicate as-is PSNR / SSIM", "untouched frames", "count, duration, audio",
                   "fix-drops s"])
    for r in results:
        prf = r["replaced_vs_damaged"]
        u = r["untouched"]
        if "bit_exact" in u:
            untouched = ("bit-exact" if u["bit_exact"] else
                         f"NOT bit-exact ({u['bit_exact_frames']}/{u['frames']})")
        else:
            vs = u.get("vs_reencode", {})
            untouched = (f"{_num(u['psnr_vs_input'])} dB vs input (plain re-encode {_num(u['reencode_psnr_vs_input'])}"
                         f"); identical to the re-encode: {vs.get('identical', '–')}/{vs.get('frames', '–')}")
        rep, floor = r["repaired"]["retime"], r["repaired"]["duplicate_as_is"]
        checks = ", ".join([_num(r["frame_count_equal"]), _num(r["duration_equal"]), r["audio"]])
        dups = str(len(r["damaged"])) + (f" (+{len(r['source_duplicates'])}: {r['source_duplicates'][:6]})"
                                          if r.get("source_duplicates") else "")
        table.rows.append([Path(r["source"]).name, r["encoding"], str(r["frames"]), dups,
                           _num(prf["precision"], 3), _num(prf["recall"], 3),
                           f"{_num(rep.get('psnr'))} / {_num(rep.get('ssim'), 4)}",
                           f"{_num(floor.get('psnr'))} / {_num(floor.get('ssim'), 4)}", untouched, checks,
                           _num(r["seconds"], 1)])
    table.notes.append("Precision and recall: frames fix-drops replaced against the frames that were damaged; a "
                       "frame that already repeated the one before it in the clip (PSNR >= 40 dB, listed in "
                       "brackets) is not counted as a false positive when replaced. "
                       "Repaired PSNR is against the true (undamaged) frame; the duplicate as-is is the floor. "
                       "Untouched frames: bit-exact for lossless (FFV1) input and output; otherwise their PSNR "
                       "against the damaged input, next to a plain decode + re-encode with the same settings.")
    return table


def speed_tables(results: list[dict[str, Any]]) -> list[Table]:
    """Commands (frames per second, ratio to the floor, peak memory) and the model alone (ms per frame)."""
    from pathlib import Path

    cmd = Table("Commands: output frames per second (wall time of the library call, model loading included)",
                ["clip", "frames in", "upsample --factor 2 fps", "fix-drops fps", "decode + re-encode fps",
                 "fix-drops / floor (time)", "peak RSS upsample / fix-drops / floor (MiB)", "device, threads"])
    model = Table("Model alone: milliseconds per synthesized frame (best / median of the timed runs), retime "
                  "against the reference",
                  ["size (px)", "retime 1 t/pair", "reference 1 t/pair", "ratio", "reference alone 1 t/pair",
                   "ratio to alone", "retime 4 t/pair", "reference 4 t/pair", "ratio", "reference alone 4 t/pair",
                   "ratio to alone"])
    seen_sizes = set()
    for r in results:
        up, fd, fl = r["upsample"], r["fix_drops"], r["reencode_floor"]
        cmd.rows.append([f"{Path(r['source']).name} ({r['size'][0]}x{r['size'][1]})", str(r["frames"]),
                         _num(up["fps"]), _num(fd["fps"]), _num(fl["fps"]), _num(r["fix_drops_over_floor"]),
                         f"{_num(up['peak_rss_mib'], 0)} / {_num(fd['peak_rss_mib'], 0)} / "
                         f"{_num(fl['peak_rss_mib'], 0)}", f"{r['device']}, {r['threads']}"])
        for m in r.get("model", []):
            key = tuple(m["size"])
            if key in seen_sizes:
                continue
            seen_sizes.add(key)
            def pair(which: str, n: str) -> str:
                if which not in m:  # results written before this column existed
                    return "–"
                best, median = m[f"{which}_best"], m[which]
                if isinstance(best, str):
                    return best
                digits = 2 if which.startswith("ratio") else 0
                return f"{_num(best[n], digits)} / {_num(median[n], digits)}"

            model.rows.append([f"{key[0]}x{key[1]}"] + [pair(w, n) for n in ("1", "4")
                                                         for w in ("retime_ms", "reference_ms", "ratio",
                                                                   "reference_alone_ms", "ratio_alone")])
    model.notes.append("reference: both engines in one process, calls interleaved after one warm-up call each, so "
                       "the reference also runs with the allocator setting retime's engine makes (glibc keeps "
                       "freed memory; docs/performance.md), which speeds it up too. reference alone: the "
                       "reference in a process of its own, as shipped, timed after retime. The reference makes one "
                       "network call per t, as its engine does. Ratio = retime / reference (lower is faster); "
                       "the target is at most 0.4. On a shared machine the best run is the least disturbed "
                       "one; the median shows the spread.")
    return [cmd, model] if model.rows else [cmd]


def machine_lines(machine: dict[str, Any]) -> list[str]:
    gpu = machine.get("gpu") or "none"
    isa = ""
    if machine.get("cpu_capability"):
        flags = machine.get("cpu_flags")
        flags = f", flags {' '.join(flags)}" if flags else ""
        isa = (f" ({machine['cpu_capability']}{flags}; retime's CPU convolutions run in "
               f"{machine.get('cpu_conv_dtype', 'float32')} here)")
    return [f"- CPU: {machine['cpu']}{isa}, {machine['cores']} cores usable; GPU: {gpu}",
            f"- torch {machine['torch']} with {machine['torch_threads']} threads; Python {machine['python']}, "
            f"PyAV {machine['pyav']} (libavcodec {machine.get('libavcodec')}), numpy {machine['numpy']}",
            f"- ffmpeg for the minterpolate peer: {machine.get('ffmpeg') or 'none'}",
            f"- retime {machine['retime']} (commit {machine.get('commit') or 'unknown'}), {machine['os']}",
            f"- date: {machine['date']}; 1-minute load average at the start: {machine.get('load_average_1min')}"
            f" (a load above the core count means other work shared the CPU and slowed the timings)"]


def gaps_table(results: list[dict[str, Any]]) -> Table:
    """One row per (clip, encoding) gap-repair run (:mod:`retime_bench.gaps`)."""
    table = Table("Timestamp gaps (fix-drops): frames deleted at seeded random positions, runs of 1-3, the other "
                  "PTS kept", ["clip", "input encoding", "frames", "deleted (gaps)", "nominal rate",
                               "gap precision", "gap recall", "filled PSNR", "model from the originals",
                               "difference dB", "model from the input", "difference dB", "kept frames",
                               "count, end, audio", "fix-drops s"])
    for r in results:
        prf, filled, kept = r["gaps_vs_true"], r["filled"], r["kept"]
        exact = ("bit-exact" if kept.get("bit_exact") else
                 f"NOT bit-exact ({kept.get('bit_exact_frames')}/{kept['frames']})" if "bit_exact" in kept else
                 f"{kept['frames']} (lossy)")
        checks = ", ".join([_num(r["frame_count_equal"]), _num(r["end_equal"]), r["audio"]])
        table.rows.append([Path(r["source"]).name, r["encoding"], str(r["frames"]),
                           f"{len(r['deleted'])} ({len(r['gaps_true'])})", r["nominal_rate"],
                           _num(prf["precision"], 3), _num(prf["recall"], 3), _num(filled["psnr"]),
                           _num(filled["model_psnr"]), _num(filled["difference_db"], 3),
                           _num(filled.get("model_psnr_decoded")), _num(filled.get("difference_decoded_db"), 3),
                           exact, checks, _num(r["seconds"], 1)])
    table.notes.append("A gap counts as found when its frame and its number of missing frames are right. Filled "
                       "PSNR is against the deleted (true) frame. The model columns run the same model at the "
                       "same instants, stored like the output, from the original (undamaged) neighbours and from "
                       "the gappy input's own decoded neighbours; for a lossless input they are the same. The "
                       "difference to the input's own frames is what retime's timing and plumbing cost (target: "
                       "within 0.3 dB); the one to the originals also holds a lossy input's coding loss. Count, end "
                       "and audio: the output has the original clip's frame count and end time, and the input's "
                       "audio packets.")
    return table


def cadence_table(results: list[dict[str, Any]]) -> Table:
    """One row per (conversion, mode) of the cadence task (:mod:`retime_bench.cadence`)."""
    table = Table("Repeat cadences (fix-drops --cadence): a virtual camera converted to 25 fps by nearest-frame "
                  "repeats, lossless", ["texture from", "source", "cadence found", "mode", "frames out",
                                        "synthesized", "PSNR vs truth", "motion spread", "truth's spread",
                                        "decimate bit-exact", "s"])
    for r in results:
        for mode, m in r["modes"].items():
            table.rows.append([r.get("texture") or Path(r["source"]).name, f"{r['source_rate']} fps", str(r["cadence_found"]), mode,
                               f"{m['frames_out']} at {m['out_rate']} fps", str(m["synthesized"]),
                               _num(m["psnr"]) + (" (vs source)" if mode == "decimate" else ""),
                               _num(m["spread"], 3), _num(r["truth_spread"], 3),
                               _num(m["bit_exact"]) if "bit_exact" in m else "-", _num(m["seconds"], 1)])
    table.notes.append("fill replaces each repeat in place (the motion around it stays uneven); retime puts every "
                       "frame at an even source position (same rate and duration); decimate drops the repeats and "
                       "writes the source rate, giving the source frames back. Motion spread: the spread of the "
                       "frame-to-frame motion, lower is evener; the truth's is the floor.")
    return table


def result_tables(result: dict[str, Any]) -> list[Table]:
    """All tables for one ``retime bench`` result document."""
    tables: list[Table] = []
    if result.get("quality"):
        tables += quality_tables([result["quality"]])
    if result.get("dropfix"):
        tables.append(dropfix_table(result["dropfix"]))
    if result.get("gaps"):
        tables.append(gaps_table(result["gaps"]))
    if result.get("cadence"):
        tables.append(cadence_table(result["cadence"]))
    if result.get("speed"):
        tables += speed_tables([result["speed"]])
    return tables


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(table: Table, level: int = 3) -> str:
    lines = [f"{'#' * level} {table.title}", "", "| " + " | ".join(_md_escape(h) for h in table.header) + " |",
             "|" + "|".join("---" for _ in table.header) + "|"]
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in table.rows]
    if table.notes:
        lines += [""] + table.notes
    return "\n".join(lines) + "\n"


def to_rich(table: Table):
    """A :class:`rich.table.Table` for the terminal."""
    from rich.table import Table as RichTable

    rt = RichTable(title=table.title, caption=" ".join(table.notes) or None, caption_justify="left",
                   show_lines=False)
    for h in table.header:
        rt.add_column(h, overflow="fold")
    for row in table.rows:
        rt.add_row(*row)
    return rt
