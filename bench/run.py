#!/usr/bin/env python3
"""joblet's speed and memory against yardsticks measured in the same run.

Usage: python3 bench/run.py [--runs N] [--skip-100k] [--only-fsync]

Every run fsyncs its commits and pod ends (the default); `--no-fsync` runs are measured
beside them for the cost of durability against power loss.

Yardsticks: `seq N | xargs -P100 -I{} CMD` and the machine's process-spawn ceiling, the C
posix_spawn loop of shared/bench/spawnloop.c (path from $SPAWNLOOP_SRC, default
../shared/bench/spawnloop.c next to the repository). Runs alternate (joblet, xargs, C loop,
joblet, ...) and ratios are taken pair by pair; the medians are printed.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "target" / "bench"
JOBLET = ROOT / "target" / "release" / "joblet"


def manifest(name, completions, parallelism, command, indexed=False):
    mode = "\n  completionMode: Indexed" if indexed else ""
    args = ", ".join(f'"{c}"' for c in command)
    return f"""apiVersion: batch/v1
kind: Job
metadata: {{name: {name}}}
spec:
  completions: {completions}
  parallelism: {parallelism}{mode}
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: main, image: bench, command: [{args}]}}]
"""


def measure(argv, **kwargs):
    """Wall seconds and peak RSS (KiB) of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, **kwargs)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"benchmark command failed: {argv}")
    return wall, usage.ru_maxrss


def supervisor_peak_kib(state):
    """The supervisor's peak RSS, from the line it logs when it leaves."""
    log = state / "supervisor.log"
    for _ in range(200):
        for line in (log.read_text().splitlines() if log.exists() else []):
            if "peak RSS" in line:
                return int(line.split("peak RSS ")[1].split(" KiB")[0])
        time.sleep(0.01)
    sys.exit(f"the supervisor of {state} did not log its peak RSS")


def joblet_run(path, tag, supervised=True, fsync=True):
    """Wall seconds and peak RSS (KiB; with --state-dir, joblet's and its supervisor's)."""
    state = WORK / f"state-{tag}"
    shutil.rmtree(state, ignore_errors=True)
    if supervised:
        extra = [] if fsync else ["--no-fsync"]
        wall, rss = measure([str(JOBLET), "run", "-f", str(path), "--state-dir", str(state), "-o", "json", *extra],
                            stderr=subprocess.DEVNULL)
        rss += supervisor_peak_kib(state)
    else:
        # A new run directory under $XDG_STATE_HOME, as a plain `joblet run` makes.
        env = dict(os.environ, XDG_STATE_HOME=str(state))
        wall, rss = measure([str(JOBLET), "run", "-f", str(path), "-o", "json"],
                            stderr=subprocess.DEVNULL, env=env)
    shutil.rmtree(state, ignore_errors=True)
    return wall, rss


def xargs(n, par, command):
    return measure(["sh", "-c", f"seq {n} | xargs -P{par} -I{{}} {command}"])[0]


def spawnloop(binary, n, par, command):
    return measure([str(binary), "-q", str(n), str(par), *command.split()])[0]


def first_pod_ms(runs):
    """Start of `joblet run` to the pod's command running (the mtime of the file it touches)."""
    marker = WORK / "first-pod"
    path = WORK / "first.yaml"
    path.write_text(manifest("first", 1, 1, ["touch", str(marker)]))
    samples = []
    for i in range(runs):
        marker.unlink(missing_ok=True)
        state = WORK / "state-first"
        shutil.rmtree(state, ignore_errors=True)
        t0 = time.time_ns()
        subprocess.run([str(JOBLET), "run", "-f", str(path), "--state-dir", str(state), "-o", "json"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        samples.append((marker.stat().st_mtime_ns - t0) / 1e6)
    return statistics.median(samples), min(samples), max(samples)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-100k", action="store_true")
    parser.add_argument("--only-fsync", action="store_true", help="only the fsync cost")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "joblet"], cwd=ROOT, check=True)
    src = Path(os.environ.get("SPAWNLOOP_SRC", ROOT.parent / "shared" / "bench" / "spawnloop.c"))
    loop = WORK / "spawnloop"
    if not src.exists():
        sys.exit(f"spawnloop.c not found at {src}: set SPAWNLOOP_SRC")
    subprocess.run(["cc", "-O2", "-o", str(loop), str(src)], check=True)

    true10k = WORK / "true10k.yaml"
    true10k.write_text(manifest("true10k", 10000, 100, ["true"]))
    sleep1k = WORK / "sleep1k.yaml"
    sleep1k.write_text(manifest("sleep1k", 1000, 100, ["sleep", "0.05"]))

    fsync_cost = []
    for i in range(args.runs):
        synced = joblet_run(true10k, "10k-fsync")[0]
        unsynced = joblet_run(true10k, "10k-no-fsync", fsync=False)[0]
        fsync_cost.append(synced / unsynced)
    fsync_row = ("10,000 x true, P=100, --state-dir: fsync / --no-fsync", f"{statistics.median(fsync_cost):.2f}x "
                 f"({min(fsync_cost):.2f}-{max(fsync_cost):.2f})", "goal <= 1.05x")
    if args.only_fsync:
        print(f"joblet benchmark, {args.runs} alternating runs, {time.strftime('%Y-%m-%d %H:%M')}")
        print("  ".join(fsync_row))
        return

    r1 = {k: [] for k in ["joblet", "plain", "xargs", "loop", "rss", "plain_rss",
                          "vs_xargs", "vs_loop", "plain_vs_xargs", "plain_vs_loop"]}
    r2 = {"joblet": [], "plain": [], "xargs": [], "loop": []}
    for i in range(args.runs):
        wall, rss = joblet_run(true10k, "10k")
        plain, plain_rss = joblet_run(true10k, "10k-plain", supervised=False)
        x = xargs(10000, 100, "true")
        c = spawnloop(loop, 10000, 100, "true")
        r1["joblet"].append(wall); r1["rss"].append(rss); r1["xargs"].append(x); r1["loop"].append(c)
        r1["plain"].append(plain); r1["plain_rss"].append(plain_rss)
        r1["vs_xargs"].append(wall / x); r1["vs_loop"].append(wall / c)
        r1["plain_vs_xargs"].append(plain / x)
        r1["plain_vs_loop"].append(plain / c)
        r2["joblet"].append(joblet_run(sleep1k, "1k")[0])
        r2["plain"].append(joblet_run(sleep1k, "1k-plain", supervised=False)[0])
        r2["xargs"].append(xargs(1000, 100, "sleep 0.05"))
        r2["loop"].append(spawnloop(loop, 1000, 100, "sleep 0.05"))
    med = statistics.median
    first = first_pod_ms(max(5, args.runs * 3))

    rows = [
        fsync_row,
        ("10,000 x true, P=100: joblet --state-dir wall", f"{med(r1['joblet']):.2f} s", ""),
        ("  xargs -P100 wall / C spawn loop wall", f"{med(r1['xargs']):.2f} s / {med(r1['loop']):.2f} s", ""),
        ("  joblet --state-dir / xargs", f"{med(r1['vs_xargs']):.2f}x", "goal <= 1.2x"),
        ("  joblet --state-dir / C spawn loop", f"{med(r1['vs_loop']):.2f}x", "goal <= 1.5x"),
        ("  joblet --state-dir peak RSS (+ supervisor)", f"{med(r1['rss']) / 1024:.1f} MiB", "goal < 50 MB"),
        ("  plain joblet run (pods in-process) / xargs", f"{med(r1['plain_vs_xargs']):.2f}x", "goal <= 1.2x"),
        ("  plain joblet run / C spawn loop", f"{med(r1['plain_vs_loop']):.2f}x", "goal <= 1.5x"),
        ("  plain joblet run peak RSS", f"{med(r1['plain_rss']) / 1024:.1f} MiB", ""),
        ("1,000 x sleep 0.05, P=100: --state-dir / ideal 0.5 s", f"{med(r2['joblet']) / 0.5:.2f}x", "goal <= 1.25x"),
        ("  plain joblet run / ideal", f"{med(r2['plain']) / 0.5:.2f}x", ""),
        ("  C loop / ideal, xargs / ideal", f"{med(r2['loop']) / 0.5:.2f}x, {med(r2['xargs']) / 0.5:.2f}x", ""),
        ("start to first pod running, --state-dir (median, min-max)", f"{first[0]:.1f} ms ({first[1]:.1f}-{first[2]:.1f})", "goal < 20 ms"),
    ]
    if not args.skip_100k:
        indexed = WORK / "indexed100k.yaml"
        indexed.write_text(manifest("indexed100k", 100000, 100, ["true"], indexed=True))
        wall, rss = joblet_run(indexed, "100k")
        rows.append(("Indexed 100,000 x true, P=100: peak RSS", f"{rss / 1024:.1f} MiB (wall {wall:.1f} s)", "goal < 200 MB"))
    width = max(len(r[0]) for r in rows)
    print(f"joblet benchmark, {args.runs} alternating runs, {time.strftime('%Y-%m-%d %H:%M')}")
    for name, value, goal in rows:
        print(f"{name:<{width}}  {value:<24} {goal}")


if __name__ == "__main__":
    main()
