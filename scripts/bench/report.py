"""The numbers of a benchmark run, from the workers' raw timings: one row per configuration.

`summarise` gives images/s (batch size over the median step time), the spread, FLOP rates, the
cores used, the batch-1 latency of "serve" rows and each of our rows' ratios to the peers of
the same model and task, also paired round by round (the runner times every worker of a group
once per round, back to back, so a ratio within a round sees the same load);
`summarise_tf_repeats` gives one row per fresh TensorFlow process and their spread.
Nothing here imports a deep-learning framework.
"""

import statistics

from bench import cpu_use


def _percentile(values, fraction):
    """The `fraction` quantile of `values` (linear interpolation between the closest ranks)."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _timing_fields(record):
    """images/s, step times, spread and cores used of one worker's raw record."""
    spec, times = record["spec"], sorted(record["step_times"])
    median = statistics.median(times)
    used = cpu_use.combine(record["usages"]) if record.get("usages") else None
    return dict(
        images_per_s=spec["batch_size"] / median,
        step_ms_median=1e3 * median,
        step_ms_min=1e3 * times[0],
        step_ms_max=1e3 * times[-1],
        spread_pct=100 * (times[-1] - times[0]) / median,
        repeats=len(times),
        parallelism=cpu_use.parallelism(used) if used else None,
        busy_threads=cpu_use.busy_threads(used) if used else None,
        peak_rss_mb=record["peak_rss_mb"],
        load_mean=statistics.mean(record["loads"]),
        round_step_s=list(record["step_times"]),
    )


def paired_ratios(numerators, denominators):
    """`numerators[i] / denominators[i]` round by round: (median, min, max), or None when the two
    lists are empty or hold different numbers of rounds.

    Args:
        numerators, denominators: per-round values of two rows of the same group, in round order
            (step times `round_step_s`, or batch-1 latencies `round_latency_s`).
    """
    if not numerators or len(numerators) != len(denominators):
        return None
    ratios = [top / bottom for top, bottom in zip(numerators, denominators)]
    return statistics.median(ratios), min(ratios), max(ratios)


def _row(record, peak):
    spec = record["spec"]
    row = dict(
        name=record["name"],
        section=spec.get("section", 0),
        preset=spec.get("preset"),
        image_size=spec.get("image_size"),
        batch_size=spec["batch_size"],
        impl=spec["impl"],
        task=spec["task"],
        backend=spec["backend"],
        precision=spec["precision"],
        dropout=spec.get("dropout", 0.0),
        **_timing_fields(record),
    )
    flops_per_image = record["ready"]["forward_flops"] * (3 if spec["task"] == "train" else 1)
    achieved = flops_per_image * spec["batch_size"] / (row["step_ms_median"] / 1e3) / 1e9
    row.update(
        gflops_per_image=flops_per_image / 1e9,
        achieved_gflops=achieved,
        pct_f32_peak=100 * achieved / peak["float32"] if peak.get("float32") else None,
        pct_bf16_peak=100 * achieved / peak["bfloat16"] if peak.get("bfloat16") else None,
    )
    calls = record.get("call_seconds")
    if calls:
        row.update(
            latency_calls=len(calls),
            latency_ms_median=1e3 * statistics.median(calls),
            latency_ms_p90=1e3 * _percentile(calls, 0.9),
            round_latency_s=[statistics.median(c) for c in record.get("round_call_seconds", []) if c],
        )
    row["info"] = record["ready"]["info"]
    return row


def _add_ratios(row, rows):
    """Our row's images/s over each peer's of the same section and task (SavedModel: the peers' inference)."""
    task = "infer" if row["task"] == "savedmodel" else row["task"]
    peers = [p for p in rows if p["impl"] != "vit_keras" and p["task"] == task and p["section"] == row["section"]]
    row["ratios"] = {p["name"]: row["images_per_s"] / p["images_per_s"] for p in peers}
    same = [p for p in peers if p["precision"] == row["precision"]] or peers
    if same:
        best = max(same, key=lambda p: p["images_per_s"])
        row["best_peer"] = best["name"]
        row["ratio_to_best_peer"] = row["images_per_s"] / best["images_per_s"]
        same_group = row["task"] == best["task"] and row["precision"] == best["precision"]
        # our images/s over the peer's in a round: the peer's step time over ours
        paired = paired_ratios(best["round_step_s"], row["round_step_s"]) if same_group else None
        if paired:
            row["paired_ratio_median"], row["paired_ratio_min"], row["paired_ratio_max"] = paired
    float32 = [p for p in peers if p["precision"] == "float32"]
    if float32:
        row["ratio_to_best_f32_peer"] = row["images_per_s"] / max(p["images_per_s"] for p in float32)
    timm = [p for p in same if p["impl"] == "timm" and p.get("latency_ms_median") and row.get("latency_ms_median")]
    if timm:
        row["latency_ratio_to_timm"] = row["latency_ms_median"] / timm[0]["latency_ms_median"]
        paired = paired_ratios(row.get("round_latency_s"), timm[0].get("round_latency_s") or [])
        if paired:
            row["paired_latency_ratio_median"] = paired[0]


def summarise(results, peak, args=None):
    """One row per measured configuration, with ratios to the peers of the same run.

    Args:
        results: the raw records of `bench.runner.run_group` (records with `error` are left out).
        peak: {"float32": GFLOP/s, "bfloat16": GFLOP/s} measured in the run (may be empty).
        args: unused; kept so callers can pass the run's arguments.

    Returns:
        A list of row dicts. Our rows carry `ratios` ({peer name: our images/s over theirs}),
        `best_peer` and `ratio_to_best_peer` (the fastest peer at our precision, else at any),
        `paired_ratio_median` / `_min` / `_max` (the ratio to that peer round by round; not for
        SavedModel rows, timed in another group than the peers' inference),
        `ratio_to_best_f32_peer`, and for "serve" rows `latency_ratio_to_timm` (our batch-1
        median latency over timm's: below 1 is faster) and `paired_latency_ratio_median` (the
        median over the rounds of that ratio within each round).
    """
    rows = [_row(r, peak) for r in results if "error" not in r and r.get("step_times")]
    for row in rows:
        if row["impl"] == "vit_keras":
            _add_ratios(row, rows)
    return rows


def summarise_tf_repeats(records, peak=None):
    """One row per fresh TensorFlow process of `--tf-repeats`, and the spreads over them.

    Args:
        records: the raw records of `bench.runner.run_tf_repeats`.
        peak: the run's matmul peak, as for `summarise`.

    Returns:
        (rows, spreads). rows as `summarise`'s plus `tf_repeat` (the run's number),
        `matmul_f32_gflops` (the median float32 matmul rate timed beside the run's repeats, None
        if none was), `images_per_s_per_tflops` (images/s over that rate), `control_images_per_s`
        (the `--tf-control` process after it, None without one) and `over_control` (our images/s
        over the control's). spreads: max / min over the runs of `images_per_s`, of
        `images_per_s_per_tflops` ("over_matmul"), of the control's measured processes ("control")
        and of `over_control`; each None with fewer than two values or where a run lacks one.
    """
    measured = [r for r in records if "error" not in r and r.get("step_times")]
    controls = {r["run"]: _row(r, peak or {})["images_per_s"] for r in measured if r.get("control")}
    rows = []
    for record in (r for r in measured if not r.get("control")):
        row = _row(record, peak or {})
        rates = record.get("matmul_gflops") or []
        matmul = statistics.median(rates) if rates else None
        control = controls.get(record["run"])
        row.update(
            name=f"tf repeat {record['run']}: {record['name']}",
            tf_repeat=record["run"],
            matmul_f32_gflops=matmul,
            images_per_s_per_tflops=1e3 * row["images_per_s"] / matmul if matmul else None,
            control_images_per_s=control,
            over_control=row["images_per_s"] / control if control else None,
        )
        rows.append(row)
    keys = dict(images_per_s="images_per_s", over_matmul="images_per_s_per_tflops", over_control="over_control")
    spreads = {name: _max_over_min([row[key] for row in rows]) for name, key in keys.items()}
    return rows, dict(spreads, control=_max_over_min(list(controls.values())))


def _max_over_min(values):
    """max / min of `values`; None with fewer than two, or if one is None."""
    if len(values) < 2 or None in values:
        return None
    return max(values) / min(values)
