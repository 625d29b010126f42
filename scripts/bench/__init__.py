"""Helpers of scripts/benchmark.py: analytic FLOPs, the timed workloads and their worker process."""
