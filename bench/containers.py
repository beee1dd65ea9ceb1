#!/usr/bin/env python3
"""The podman and docker runtimes' speed against the yardsticks issue 11 names, measured in
one run.

Usage: python3 bench/containers.py [--runs N] [--pods N]   (as root; podman, runc and a
running Docker daemon; the images made by scripts/test-images.sh)

A Job of N pods (default 200), parallelism 10, each a container from the test image running
`true` (`runtimeClassName: podman`), against:
- `seq N | xargs -P10 -I{} podman --runtime runc run --rm ... IMAGE true`: the same
  containers through the podman CLI (with the three settings this machine needs, see
  shared/baselines.md section 6: runc, nofile and nproc ulimits; no network, as joblet's
  containers share the host's);
- `seq N | xargs -P10 -I{} runc run` of one prepared bundle: the floor, what runc alone costs;
- the same Job with `runtimeClassName: docker` against `seq N | xargs -P10 -I{} docker run
  --rm --network=none IMAGE true`.
Runs alternate (joblet, podman, runc, joblet docker, docker, joblet, ...) and the ratios are taken pair by pair; the
medians are printed.

Then the time from starting `joblet run` (a fresh state directory each time: its engine
inspects and mounts the image first) to its one container running: the container prints the kernel's uptime,
with the podman runtime and with the host runtime, against `podman run` of the same, each
the median of --runs alternating runs. It needs the image examples/images/build.sh makes.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "target" / "bench-containers"
JOBLET = ROOT / "target" / "release" / "joblet"
IMAGE = "localhost/joblet-test/entry:1"
PARALLELISM = 10


def wall(argv, **kwargs):
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)
    if done.returncode != 0:
        sys.exit(f"benchmark command failed: {argv[:4]}...: {done.stderr.decode()[-400:]}")
    return time.perf_counter() - start


def joblet(pods, runtime="podman"):
    manifest = WORK / "job.yaml"
    manifest.write_text(f"""apiVersion: batch/v1
kind: Job
metadata: {{name: boxes}}
spec:
  completions: {pods}
  parallelism: {PARALLELISM}
  template:
    spec:
      runtimeClassName: {runtime}
      restartPolicy: Never
      containers: [{{name: main, image: {IMAGE}, command: ["true"]}}]
""")
    state = WORK / "state"
    shutil.rmtree(state, ignore_errors=True)
    return wall([str(JOBLET), "run", "-f", str(manifest), "--state-dir", str(state)])


def podman(pods):
    command = ("podman --runtime runc run --rm --network=none "
               "--ulimit nofile=20000:20000 --ulimit nproc=32768:32768 "
               f"{IMAGE} true")
    return wall(["sh", "-c", f"seq {pods} | xargs -P{PARALLELISM} -I{{}} {command}"])


def docker(pods):
    command = f"docker run --rm --network=none {IMAGE} true"
    return wall(["sh", "-c", f"seq {pods} | xargs -P{PARALLELISM} -I{{}} {command}"])


def runc_bundle():
    """One bundle on a read-only mount of the image: what runc alone costs a container."""
    bundle = WORK / "bundle"
    shutil.rmtree(bundle, ignore_errors=True)
    bundle.mkdir(parents=True)
    rootfs = subprocess.run(["podman", "image", "mount", IMAGE], check=True,
                            capture_output=True, text=True).stdout.strip()
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    config["root"] = {"path": rootfs, "readonly": True}
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                     if n["type"] != "network"]
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def runc(pods, bundle):
    root = WORK / "runc-root"
    return wall(["sh", "-c", f"seq {pods} | xargs -P{PARALLELISM} -I{{}} "
                 f"runc --root {root} run --bundle {bundle} bench-{{}}"])


LATENCY_IMAGE = "localhost/joblet-examples/busybox:1"


def uptime():
    return float(Path("/proc/uptime").read_text().split()[0])


def first_output_s(argv):
    """Seconds from launching `argv` to the uptime its container prints (busybox's `date`
    has no nanoseconds; the kernel's uptime is the same inside a container, to 10 ms)."""
    start = uptime()
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"benchmark command failed: {argv[:4]}...: {done.stderr[-400:]}")
    stamp = next(float(line.split()[-2]) for line in done.stdout.splitlines()
                 if line.count(".") == 2)
    return stamp - start


def joblet_latency(runtime):
    manifest = WORK / f"first-{runtime}.yaml"
    manifest.write_text(f"""apiVersion: batch/v1
kind: Job
metadata: {{name: first}}
spec:
  template:
    spec:
      runtimeClassName: {runtime}
      restartPolicy: Never
      containers: [{{name: main, image: {LATENCY_IMAGE}, command: ["cat", "/proc/uptime"]}}]
""")
    state = WORK / f"first-{runtime}"
    shutil.rmtree(state, ignore_errors=True)
    return first_output_s([str(JOBLET), "run", "--logs", "-f", str(manifest),
                            "--state-dir", str(state)])


def podman_latency():
    return first_output_s(["podman", "--runtime", "runc", "run", "--rm", "--network=none",
                           "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768",
                           LATENCY_IMAGE, "cat", "/proc/uptime"])


def latencies(runs):
    subprocess.run(["examples/images/build.sh"], cwd=ROOT, check=True)
    found = {"podman runtime": [], "host runtime": [], "podman run": []}
    for _ in range(runs):
        found["podman runtime"].append(joblet_latency("podman"))
        found["host runtime"].append(joblet_latency("host"))
        found["podman run"].append(podman_latency())
    print(f"start to first container running (median of {runs}):")
    for name, values in found.items():
        print(f"  {name:15} {statistics.median(values) * 1000:7.0f} ms")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pods", type=int, default=200)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/containers.py runs containers: run it as root")
    if not JOBLET.exists():
        sys.exit("build first: cargo build --release")
    subprocess.run(["scripts/test-images.sh"], cwd=ROOT, check=True)
    WORK.mkdir(parents=True, exist_ok=True)
    bundle = runc_bundle()
    results = {"joblet": [], "podman": [], "runc": [], "joblet docker": [], "docker": []}
    for _ in range(args.runs):
        results["joblet"].append(joblet(args.pods))
        results["podman"].append(podman(args.pods))
        results["runc"].append(runc(args.pods, bundle))
        results["joblet docker"].append(joblet(args.pods, "docker"))
        results["docker"].append(docker(args.pods))
    median = {k: statistics.median(v) for k, v in results.items()}
    ratio = lambda a, b: statistics.median(x / y for x, y in zip(results[a], results[b]))
    print(f"{args.pods} containers running `true`, parallelism {PARALLELISM}, {args.runs} runs:")
    for name, seconds in median.items():
        print(f"  {name:13} {seconds:6.2f} s  ({args.pods / seconds:5.1f} containers/s)")
    print(f"  joblet / xargs podman run = {ratio('joblet', 'podman'):.2f}x  (goal <= 0.5x, moonshot <= 0.15x)")
    print(f"  joblet / xargs runc run   = {ratio('joblet', 'runc'):.2f}x  (the floor)")
    print(f"  joblet docker / xargs docker run = {ratio('joblet docker', 'docker'):.2f}x")
    latencies(max(args.runs, 5))


if __name__ == "__main__":
    main()
