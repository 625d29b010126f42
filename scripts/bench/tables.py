"""The Markdown of a benchmark run: one dated section with the machine, the command and the tables.

The section starts with a `### TITLE (YYYY-MM-DD)` heading (what `bench.outputs.write_markdown`
replaces when the same title is run again on the same day), then the CPU model and the flags that
decide its speed, the command and the measured matmul peak, then one table per model and task,
the serving table (throughput at the model's batch, batch-1 latency) and the TensorFlow
run-to-run table. A model trained with dropout has its rate in its tables' headings.
"""

from bench.machine import describe_flags
from bench.specs import dropout_note

TABLE_HEAD = (
    "| configuration | images/s | step ms (median, min-max) | × best peer | per round | best peer "
    "| × best f32 peer | % f32 peak | % bf16 peak | CPU/wall | busy threads | peak RSS MB | load |\n"
    "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"
)


def _num(value, fmt=".0f", none="—"):
    return none if value is None else format(value, fmt)


def _pct(value):
    return "—" if value is None else f"{value:.0f}%"


def _ratio(value):
    return f"**{value:.2f}×**" if value else "—"


def _per_round(row):
    """The paired ratio to the best peer, round by round: `median (min-max)`, or — where not paired."""
    if row.get("paired_ratio_median") is None:
        return "—"
    return f"{row['paired_ratio_median']:.2f} ({row['paired_ratio_min']:.2f}-{row['paired_ratio_max']:.2f})"


def heading(title, date):
    """The section's first line: `### TITLE (YYYY-MM-DD)`."""
    return f"### {title} ({date})"


def header(machine, peak, peak_info, command, started, gpu=False):
    """The lines under the heading: when, the command, the CPU and its flags, the matmul peak."""
    cpu = f"{machine['model']}, {machine['cores']} logical CPUs; flags: {describe_flags(machine['flags'])}"
    if peak_info.get("gpu"):
        cpu = f"{peak_info['gpu']}; {cpu}"
    return [
        f"Started {started} UTC. Command: `{command}`",
        "",
        f"Machine: {cpu}.",
        "",
        f"Matmul peak measured in this run: {_num(peak.get('float32'))} GFLOP/s float32, "
        f"{_num(peak.get('bfloat16'))} GFLOP/s bfloat16 ({peak_info.get('backend', 'not measured')}, "
        f"{peak_info.get('matmul_size', '?')}²). Ratios are our images/s over the best peer's of the same "
        f"model and task in this run, at our precision when a peer ran at it (SavedModel rows: over the "
        f"peers' inference); per round: the ratio to that peer paired round by round (each round "
        f"times every configuration of the group once, back to back), median (min-max); CPU/wall is "
        f"the process's CPU time over the timed wall time; busy threads "
        f"took over 10% of it" + ("; the % bf16 peak column is the model FLOPs utilisation." if gpu else "."),
    ]


def config_table(rows):
    """The main table: one line per configuration."""
    lines = [TABLE_HEAD]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['images_per_s']:.1f} | {row['step_ms_median']:.0f} "
            f"({row['step_ms_min']:.0f}-{row['step_ms_max']:.0f}) | {_ratio(row.get('ratio_to_best_peer'))} | "
            f"{_per_round(row)} | {row.get('best_peer', '')} | {_ratio(row.get('ratio_to_best_f32_peer'))} | "
            f"{_pct(row['pct_f32_peak'])} | {_pct(row['pct_bf16_peak'])} | "
            f"{_num(row.get('parallelism'), '.2f')} | {_num(row.get('busy_threads'), 'd')} | "
            f"{row['peak_rss_mb'] or 0:.0f} | {row['load_mean']:.1f} |"
        )
    return lines


def serve_table(rows, batch_size):
    """Serving: throughput at `batch_size`, batch-1 latency (median, p90) and the ratios to timm
    (also the median of the ratios within each round)."""
    lines = [
        f"| configuration | batch-{batch_size} images/s | × timm images/s | per round | batch-1 latency ms, "
        "median | p90 | × timm latency | per round | CPU/wall | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['images_per_s']:.1f} | {_ratio(row.get('ratio_to_best_peer'))} | "
            f"{_per_round(row)} | {_num(row.get('latency_ms_median'), '.1f')} | "
            f"{_num(row.get('latency_ms_p90'), '.1f')} | "
            f"{_ratio(row.get('latency_ratio_to_timm'))} | {_num(row.get('paired_latency_ratio_median'), '.2f')} | "
            f"{_num(row.get('parallelism'), '.2f')} | "
            f"{row['peak_rss_mb'] or 0:.0f} |"
        )
    return lines


def tf_repeats_table(rows, spreads):
    """One line per fresh TensorFlow process (the machine's matmul rate and the control beside it), then the spreads."""
    lines = [
        "| run | images/s | step ms (median, min-max) | float32 matmul GFLOP/s beside it "
        "| images/s per matmul TFLOP/s | control images/s | ours / control | CPU/wall | busy threads "
        "| peak RSS MB | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['tf_repeat']} | {row['images_per_s']:.1f} | {row['step_ms_median']:.0f} "
            f"({row['step_ms_min']:.0f}-{row['step_ms_max']:.0f}) | {_num(row.get('matmul_f32_gflops'), '.0f')} | "
            f"{_num(row.get('images_per_s_per_tflops'), '.1f')} | {_num(row.get('control_images_per_s'), '.1f')} | "
            f"{_num(row.get('over_control'), '.2f')} | {_num(row.get('parallelism'), '.2f')} | "
            f"{_num(row.get('busy_threads'), 'd')} | {row['peak_rss_mb'] or 0:.0f} | {row['load_mean']:.1f} |"
        )
    spread = {
        name: _num(spreads.get(name), ".2f") for name in ("images_per_s", "over_matmul", "control", "over_control")
    }
    lines += [
        "",
        f"Spread over the runs (max / min images/s): {spread['images_per_s']}×; of images/s over the "
        f"machine's float32 matmul rate beside each run: {spread['over_matmul']}×; of the control: "
        f"{spread['control']}×; of ours over the control, run by run: {spread['over_control']}×.",
    ]
    return lines


def section_tables(rows, sections):
    """`####` subsections: per model, one table per task (SavedModel rows with the inference)."""
    lines = []
    for index, section in enumerate(sections):
        title, dropout = f"{section['preset']}, {section['image_size']} px", dropout_note(section)
        mine = [r for r in rows if r["section"] == index]
        for task, what in (("train", "training"), ("infer", "inference")):
            chosen = [r for r in mine if r["task"] == task or (task == "infer" and r["task"] == "savedmodel")]
            if chosen:
                heading_line = f"#### {title}, batch {section['batch_size']}{dropout}: {what}"
                lines += ["", heading_line, "", *config_table(chosen)]
        serve = [r for r in mine if r["task"] == "serve"]
        if serve:
            lines += ["", f"#### {title}{dropout}: serving (ours: SavedModel `serving_default`; timm: eager)", ""]
            lines += serve_table(serve, section["batch_size"])
    return lines


def markdown_section(report, title, date, gpu=False):
    """The whole dated section as text.

    Args:
        report: dict with machine, matmul_peak_gflops, matmul_peak_info, command, started, rows, sections, and
            optionally tf_rows, tf_spreads, tf_name (the `--tf-repeats` configuration), errors.
        title: the heading's title; date: 'YYYY-MM-DD'.
        gpu: a `--gpu` run (the bf16 peak column is then the MFU).

    Returns:
        The section's Markdown, ending with a newline.
    """
    lines = [heading(title, date), ""]
    peak, peak_info = report["matmul_peak_gflops"], report["matmul_peak_info"]
    lines += header(report["machine"], peak, peak_info, report["command"], report["started"], gpu)
    lines += section_tables(report["rows"], report["sections"])
    if report.get("tf_rows"):
        count = len(report["tf_rows"])
        runs = f"{count} fresh processes of `{report['tf_name']}`{dropout_note(report['sections'][0])}"
        lines += ["", f"#### TensorFlow run to run: {runs}", ""]
        lines += tf_repeats_table(report["tf_rows"], report["tf_spreads"])
    if report.get("errors"):
        lines += ["", *[f"Not measured: {name}: {error}" for name, error in report["errors"]]]
    return "\n".join(lines) + "\n"
