#!/usr/bin/env python3
"""Run a command RUNS times; print its median wall time (ms), median CPU time of the process and
its children (user + system, ms) and the peak RSS of its process tree (MiB), tab-separated.

The peak is the largest sum, over the tree's live processes, of each one's high-water mark
(VmHWM in /proc/PID/status, which the kernel keeps, so a spike between two samples still counts),
sampled every millisecond; the largest ru_maxrss of any waited-for process is a floor for it.
Usage: measure.py RUNS COMMAND...
"""
import os
import resource
import subprocess
import sys
import time


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def once(argv):
    seen = {}  # pid -> largest VmHWM seen, so a process that has exited still counts
    start = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        for p in tree(proc.pid):
            seen[p] = max(seen.get(p, 0), hwm_kib(p))
        peak = max(peak, sum(seen.values()))
        time.sleep(0.001)
    wall = (time.monotonic() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    peak = max(peak, after.ru_maxrss)
    return wall, cpu, peak / 1024


def main():
    runs, argv = int(sys.argv[1]), sys.argv[2:]
    results = [once(argv) for _ in range(runs)]
    median = lambda xs: sorted(xs)[len(xs) // 2]
    wall = median([r[0] for r in results])
    cpu = median([r[1] for r in results])
    peak = max(r[2] for r in results)
    print(f"{wall:.1f}\t{cpu:.1f}\t{peak:.0f}")


if __name__ == "__main__":
    main()
