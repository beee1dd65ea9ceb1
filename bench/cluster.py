#!/usr/bin/env python3
"""`joblet run --context` following a big Job on a cluster: its memory, against kubectl's.

Usage: python3 bench/cluster.py [--completions 10000] [--parallelism 100]

`joblet serve` (host runtime, no fsync) is the cluster. A Job of COMPLETIONS pods, each
printing one line, runs there twice:
1. with `joblet run --context` following it with its logs saved (every pod's log read and
   written to the run directory), its peak RSS taken from the kernel (`ru_maxrss`);
2. created with `kubectl create` and waited for with
   `kubectl wait --for=condition=complete`, the baseline: what following the same Job costs
   kubectl, which reads no logs.
Prints both peak RSS, their ratio, the wall times, and checks every log was saved. The issue
asks for less than 100 MB at 10,000 completions.

3. Reaction, REACTIONS times: a one-pod Job (`echo quick; sleep 0.5`) followed by `joblet run --context`
   while this script watches the same Job itself (a raw watch, no client library); the
   reaction is the time from this watch seeing the `Complete` condition to joblet's exit
   (its last event awaited, the pod's log saved, the summary printed). The baseline is
   `kubectl wait --for=condition=complete` on the same kind of Job, timed the same way.
   The issue asks joblet to react within 100 ms.
"""

import argparse
import http.client
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOBLET = ROOT / "target" / "release" / "joblet"

JOB = """apiVersion: batch/v1
kind: Job
metadata: {{name: {name}}}
spec:
  completions: {completions}
  parallelism: {parallelism}
  completionMode: Indexed
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
        command: ["sh", "-c", "{script}"]
"""
BIG = "echo done $JOB_COMPLETION_INDEX"
QUICK = "echo quick; sleep 0.5"


def peak_rss_mib(command, env):
    """Runs `command` to its end; its wall time and peak RSS (MiB), from wait4's rusage."""
    start = time.monotonic()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{command[:3]} exited {code}: {proc.stderr.read().decode()[-2000:]}")
    return took, usage.ru_maxrss / 1024


def complete_seen_at(state, port, name, seen):
    """Watches Job `name` and stores the monotonic time its Complete condition arrived."""
    token = (state / "token").read_text().strip()
    context = ssl.create_default_context(cafile=str(state / "pki" / "ca.crt"))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=60)
    conn.request("GET", f"/apis/batch/v1/namespaces/default/jobs?watch=1&fieldSelector=metadata.name%3D{name}",
                 headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    for line in response:
        job = json.loads(line)["object"]
        conditions = job.get("status", {}).get("conditions", [])
        if any(c["type"] == "Complete" and c["status"] == "True" for c in conditions):
            seen.append(time.monotonic())
            return


def reaction(command, state, port, name, env):
    """Seconds from the Complete condition reaching a watch to `command`'s exit."""
    import threading
    seen = []
    watcher = threading.Thread(target=complete_seen_at, args=(state, port, name, seen))
    watcher.start()
    time.sleep(0.2)  # the watch is open before the Job exists
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc.wait()
    ended = time.monotonic()
    watcher.join()
    if proc.returncode != 0:
        sys.exit(f"{command[:3]} exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
    return ended - seen[0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--completions", type=int, default=10000)
    parser.add_argument("--parallelism", type=int, default=100)
    parser.add_argument("--reactions", type=int, default=5)
    args = parser.parse_args()
    if not JOBLET.exists():
        sys.exit("build first: cargo build --release")
    with tempfile.TemporaryDirectory(prefix="joblet-bench-cluster-") as tmp:
        tmp = Path(tmp)
        serve = subprocess.Popen(
            [str(JOBLET), "serve", "--listen", "127.0.0.1:0", "--state-dir", str(tmp / "state"),
             "--no-fsync", "--max-pods", str(args.parallelism + 10)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            kubeconfig = serve.stdout.readline().strip().removeprefix("export KUBECONFIG=")
            env = dict(os.environ, KUBECONFIG=kubeconfig)
            joblet_job = tmp / "joblet.yaml"
            joblet_job.write_text(JOB.format(name="followed", completions=args.completions,
                                             parallelism=args.parallelism, script=BIG))
            run_dir = tmp / "run"
            joblet_took, joblet_mib = peak_rss_mib(
                [str(JOBLET), "run", "-f", str(joblet_job), "--context", "joblet",
                 "--state-dir", str(run_dir)], env)
            logs = list((run_dir / "logs").iterdir())
            if len(logs) != args.completions:
                sys.exit(f"{len(logs)} logs saved, not {args.completions}")

            kubectl_job = tmp / "kubectl.yaml"
            kubectl_job.write_text(JOB.format(name="waited", completions=args.completions,
                                              parallelism=args.parallelism, script=BIG))
            start = time.monotonic()
            subprocess.run(["kubectl", "create", "-f", str(kubectl_job)], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            wait_took, kubectl_mib = peak_rss_mib(
                ["kubectl", "wait", "--for=condition=complete", "job/waited", "--timeout=3600s"],
                env)
            kubectl_took = time.monotonic() - start

            port = int(Path(kubeconfig).read_text().split("server: https://127.0.0.1:")[1].split()[0])
            joblet_reactions, kubectl_reactions = [], []
            for i in range(args.reactions):
                quick = tmp / f"quick-{i}.yaml"
                quick.write_text(JOB.format(name=f"quick-{i}", completions=1, parallelism=1, script=QUICK))
                joblet_reactions.append(reaction(
                    [str(JOBLET), "run", "-f", str(quick), "--context", "joblet",
                     "--state-dir", str(tmp / f"quick-run-{i}")],
                    tmp / "state", port, f"quick-{i}", env))
                waited = tmp / f"waited-{i}.yaml"
                waited.write_text(JOB.format(name=f"waited-{i}", completions=1, parallelism=1, script=QUICK))
                subprocess.run(["kubectl", "create", "-f", str(waited)], env=env, check=True,
                               stdout=subprocess.DEVNULL)
                kubectl_reactions.append(reaction(
                    ["kubectl", "wait", "--for=condition=complete", f"job/waited-{i}", "--timeout=60s"],
                    tmp / "state", port, f"waited-{i}", env))
        finally:
            serve.terminate()
            serve.wait()
    print(f"Job of {args.completions} completions, parallelism {args.parallelism}, on joblet serve")
    print(f"joblet run --context (logs saved): peak RSS {joblet_mib:.1f} MiB, {joblet_took:.1f} s")
    print(f"kubectl create + wait (no logs):   peak RSS {kubectl_mib:.1f} MiB, {kubectl_took:.1f} s")
    print(f"memory ratio joblet/kubectl wait: {joblet_mib / kubectl_mib:.2f}x")
    print(f"under 100 MB: {'yes' if joblet_mib * 1.048576 < 100 else 'NO'}")
    ms = lambda xs: f"median {statistics.median(xs) * 1000:.0f} ms (" + ", ".join(f"{x * 1000:.0f}" for x in xs) + ")"
    print(f"reaction to Complete, joblet run --context: {ms(joblet_reactions)}")
    print(f"reaction to Complete, kubectl wait:         {ms(kubectl_reactions)}")


if __name__ == "__main__":
    main()
