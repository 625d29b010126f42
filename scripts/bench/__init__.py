"""Helpers of scripts/benchmark.py, one job per module.

specs (what to run), runner (worker processes, interleaved timing), worker (one timed workload
per process), workloads (the models of each framework), flops (analytic FLOPs), cpu_use (cores
used), machine (CPU model and flags), report (rows and ratios), tables (Markdown), outputs
(JSON, CSV and the Markdown file), profile_step (operator profile, run on its own); the
single-kernel benchmarks matmul_libraries, xla_products, one_image_threads and dropout_draws, run
on their own, share micro.
"""
