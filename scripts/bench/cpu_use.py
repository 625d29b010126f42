"""How many cores a timed run used: process CPU time over wall time, and the busy threads.

A worker takes `snapshot()` before and after each timed call and reports `usage(before, after)`;
the orchestrator adds the usages of a configuration's repeats with `combine` and reports
`parallelism` (CPU seconds per wall second: 2.0 is both cores of a 2-core machine busy) and
`busy_threads` (threads that took more than 10% of the process's CPU time). A run that fell
back to one core shows as parallelism near 1.0 with one busy thread.

A thread that ends inside the timed call is missing from the per-thread counts (its CPU time
is still in the process's); the workloads' thread pools live as long as the process.

Process CPU time comes from `resource.getrusage` (microseconds); per-thread CPU time from
/proc/self/task/*/stat (Linux; clock ticks, usually 10 ms), elsewhere it is None.
"""

import os
import resource
import time

BUSY_SHARE = 0.10  # a thread is "busy" when it took more than this share of the process's CPU time
MIN_THREAD_CPU_S = 0.05  # below this much thread CPU time (5 ticks at 100 Hz) the count says nothing


def _thread_ticks(task_dir="/proc/self/task"):
    """{thread id: user + system clock ticks} of this process's threads; None without /proc."""
    try:
        tids = os.listdir(task_dir)
    except OSError:
        return None
    ticks = {}
    for tid in tids:
        try:
            with open(os.path.join(task_dir, tid, "stat")) as f:
                stat = f.read()
        except OSError:  # the thread ended between listdir and open
            continue
        fields = stat.rpartition(")")[2].split()  # after "pid (comm)": state is field 3, utime 14, stime 15
        ticks[tid] = int(fields[11]) + int(fields[12])
    return ticks


def snapshot():
    """(wall seconds, process CPU seconds, per-thread ticks) now."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), used.ru_utime + used.ru_stime, _thread_ticks()


def usage(before, after):
    """What a timed call used between two snapshots, as JSON-ready data.

    Returns:
        {"wall_s", "cpu_s", "thread_cpu_s": {thread id: CPU seconds} or None}.
    """
    (wall0, cpu0, ticks0), (wall1, cpu1, ticks1) = before, after
    threads = None
    if ticks0 is not None and ticks1 is not None:
        hz = os.sysconf("SC_CLK_TCK")
        threads = {tid: (t - ticks0.get(tid, 0)) / hz for tid, t in ticks1.items() if t > ticks0.get(tid, 0)}
    return {"wall_s": wall1 - wall0, "cpu_s": cpu1 - cpu0, "thread_cpu_s": threads}


def combine(usages):
    """The sum of several `usage` dicts (the timed repeats of one configuration)."""
    total = {"wall_s": 0.0, "cpu_s": 0.0, "thread_cpu_s": {}}
    for item in usages:
        total["wall_s"] += item["wall_s"]
        total["cpu_s"] += item["cpu_s"]
        if item["thread_cpu_s"] is None or total["thread_cpu_s"] is None:
            total["thread_cpu_s"] = None
            continue
        for tid, seconds in item["thread_cpu_s"].items():
            total["thread_cpu_s"][tid] = total["thread_cpu_s"].get(tid, 0.0) + seconds
    return total


def parallelism(total):
    """Process CPU seconds per wall second of a `combine`d usage; None when nothing was timed."""
    return total["cpu_s"] / total["wall_s"] if total["wall_s"] > 0 else None


def busy_threads(total, share=BUSY_SHARE, resolution_s=MIN_THREAD_CPU_S):
    """How many threads took more than `share` of the threads' CPU time.

    None without /proc, or when the threads' CPU time is under `resolution_s` (a few clock
    ticks: too short a timed part to say).
    """
    threads = total["thread_cpu_s"]
    if threads is None or sum(threads.values()) < resolution_s:
        return None
    cpu = sum(threads.values())
    return sum(1 for seconds in threads.values() if seconds > share * cpu)
