#!/usr/bin/env python3
"""Turns cgbench's JSON (cgbench --json FILE) into the data files the gnuplot
scripts beside this one read. Usage: extract.py RESULTS.json OUTDIR"""
import json
import sys

rows = {r["name"]: r for r in json.load(open(sys.argv[1]))}
out = sys.argv[2]


def val(name, field="cgcore"):
    r = rows.get(name)
    v = r.get(field) if r else None
    return "NaN" if v is None else repr(v)


def write(fname, header, lines):
    with open(f"{out}/{fname}", "w") as f:
        f.write("# " + header + "\n")
        for line in lines:
            f.write(" ".join(line) + "\n")


sizes = [("1e3", 1000), ("1e4", 10000), ("1e5", 100000), ("1e6", 1000000)]
write("fork_exit.dat",
      "processes engine_fork_exit engine_leader_first baseline_fork_exit baseline_leader_first (ns)",
      [[str(n), val(f"fork_exit_{s}_engine"), val(f"fork_exit_leader_first_{s}_engine"),
        val(f"mm_owner_baseline_fork_exit_{s}"),
        val(f"mm_owner_baseline_fork_exit_leader_first_{s}")] for s, n in sizes])

write("move_threads.dat",
      "threads engine_v1 kernel_v1 engine_v2 kernel_v2 (ns per thread)",
      [[str(n), val(f"move_{n}threads_per_thread_engine"),
        val(f"move_{n}threads_per_thread_engine", "kernel"),
        val(f"move_{n}threads_per_thread_engine_v2"),
        val(f"move_{n}threads_per_thread_engine_v2", "kernel")] for n in (10, 100, 1000, 5000)])

write("read_procs.dat",
      "processes kernel_v1 mount_v1 fs_v1 kernel_v2 mount_v2 fs_v2 (us per read of cgroup.procs)",
      [[str(n), val(f"read_procs_{n}_fs", "kernel"), val(f"read_procs_{n}_mount"),
        val(f"read_procs_{n}_fs"), val(f"read_procs_{n}_fs_v2", "kernel"),
        val(f"read_procs_{n}_mount_v2"), val(f"read_procs_{n}_fs_v2")] for n in (1000, 10000)])

write("transfer.dat",
      "tasks v1_ns_per_task v2_ns_per_task v1_allocs v2_allocs",
      [[str(n), val(f"transfer_{s}_per_task_engine"), val(f"transfer_{s}_per_task_engine_v2"),
        val(f"transfer_{s}_allocs_engine"), val(f"transfer_{s}_allocs_engine_v2")]
       for s, n in (("1e3", 1000), ("1e6", 1000000))])
