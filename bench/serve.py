#!/usr/bin/env python3
"""`joblet serve` under load: list time with many objects stored, and watchers' cost.

Usage: python3 bench/serve.py [--jobs 1000] [--pods-per-job 100] [--watchers 100]
                              [--completions 10000] [--skip-list] [--skip-watch] [--table]
                              [--runs-watch 2] [--spinners]

1. List: a state directory with JOBS finished Jobs and JOBS*PODS_PER_JOB pods is made from a
   real Job and its pods (run through the server, then copied under new names into the
   SQLite store), the server is started on it, and the requests `kubectl get jobs` sends (the
   Table list, 500 per page) are timed from a client on a kept-alive TLS connection: the
   server time of one `kubectl get jobs`. `kubectl get jobs` itself is timed too (it includes
   kubectl's own start, ~0.1-0.2 s).
2. Watch: a Job of COMPLETIONS pods (`true`, parallelism 100) runs once with no watcher and
   once with WATCHERS clients watching all pods (full objects, as client libraries do; with
   --table, Table rows as `kubectl get pods -w` asks for), in alternation; each watcher is a
   process of its own that counts the events it got, and all must agree. Prints the wall-time
   ratios, with the watchers at normal priority and under SCHED_IDLE.
3. With --spinners, the control: the same Job beside processes that only spin.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import resource
import shutil
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOBLET = ROOT / "target" / "release" / "joblet"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"


class Server:
    def __init__(self, state):
        self.state = Path(state)
        self.proc = subprocess.Popen(
            [str(JOBLET), "serve", "--listen", "127.0.0.1:0", "--state-dir", str(state)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline().strip()
        self.kubeconfig = line.removeprefix("export KUBECONFIG=")
        text = Path(self.kubeconfig).read_text()
        self.port = int(text.split("server: https://127.0.0.1:")[1].split()[0])
        self.token = (self.state / "token").read_text().strip()
        self.context = ssl.create_default_context(cafile=str(self.state / "pki" / "ca.crt"))

    def connection(self):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=600)

    def request(self, conn, method, path, body=None, accept="application/json"):
        headers = {"Authorization": f"Bearer {self.token}", "Accept": accept}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        if response.status >= 300:
            sys.exit(f"{method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data)

    def cpu_seconds(self):
        """User + system CPU of the server so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def job_body(name, completions, parallelism):
    return json.dumps({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"completions": completions, "parallelism": parallelism,
                 "template": {"spec": {"restartPolicy": "Never", "containers": [
                     {"name": "main", "image": "bench", "command": ["true"]}]}}}})


def wait_complete(server, conn, name):
    while True:
        job = server.request(conn, "GET", f"/apis/batch/v1/namespaces/default/jobs/{name}")
        if any(c["type"] == "Complete" for c in job.get("status", {}).get("conditions", [])):
            return job
        time.sleep(0.05)


def make_listing_state(state, jobs, pods_per_job):
    """A real finished Job with its pods, copied under new names into the store."""
    server = Server(state)
    conn = server.connection()
    server.request(conn, "POST", "/apis/batch/v1/namespaces/default/jobs", job_body("model", pods_per_job, 100))
    wait_complete(server, conn, "model")
    server.stop()
    db = sqlite3.connect(state / "state.db")
    job_body_text, = db.execute("SELECT body FROM objects WHERE kind='Job' AND name='model'").fetchone()
    pods = [r[0] for r in db.execute("SELECT body FROM objects WHERE kind='Pod'")]
    model_uid = json.loads(job_body_text)["metadata"]["uid"]
    rv, = db.execute("SELECT value FROM meta WHERE key='resource_version'").fetchone()
    rows = []
    for j in range(jobs):
        name = f"batch-{j:04d}"
        uid = f"{model_uid[:-4]}{j:04x}"
        replace = lambda text: text.replace(model_uid, uid).replace("model", name)
        rv += 1
        job = json.loads(replace(job_body_text))
        job["metadata"]["resourceVersion"] = str(rv)
        rows.append(("Job", "default", name, rv, json.dumps(job, separators=(",", ":"))))
        for p, pod in enumerate(pods):
            rv += 1
            body = json.loads(replace(pod))
            body["metadata"]["name"] = f"{name}-{p:03d}"
            body["metadata"]["resourceVersion"] = str(rv)
            rows.append(("Pod", "default", body["metadata"]["name"], rv, json.dumps(body, separators=(",", ":"))))
    db.execute("DELETE FROM objects WHERE kind IN ('Job', 'Pod', 'ControllerState')")
    db.executemany("INSERT INTO objects (kind, namespace, name, resource_version, body) VALUES (?,?,?,?,?)", rows)
    db.execute("UPDATE meta SET value=? WHERE key='resource_version'", (rv,))
    db.commit()
    db.close()


def bench_list(args, work):
    state = work / "list"
    make_listing_state(state, args.jobs, args.pods_per_job)
    started = time.perf_counter()
    server = Server(state)
    conn = server.connection()
    server.request(conn, "GET", "/apis/batch/v1/namespaces/default/jobs?limit=1")
    print(f"server start with {args.jobs} Jobs, {args.jobs * args.pods_per_job} pods stored: "
          f"{time.perf_counter() - started:.2f} s", flush=True)
    times = []
    headers = {"Authorization": f"Bearer {server.token}", "Accept": TABLE}
    for _ in range(args.runs):
        # Rows are rendered once per second of the clock: each run starts in a new second.
        time.sleep(1 - time.time() % 1 + 0.01)
        path = "/apis/batch/v1/namespaces/default/jobs?limit=500"
        rows, elapsed = 0, 0.0
        while True:
            # Timed: request to the last byte of the response; reading it is not.
            begin = time.perf_counter()
            conn.request("GET", path, headers=headers)
            data = conn.getresponse().read()
            elapsed += time.perf_counter() - begin
            table = json.loads(data)
            rows += len(table["rows"])
            token = table["metadata"].get("continue")
            if not token:
                break
            path = f"/apis/batch/v1/namespaces/default/jobs?continue={token}&limit=500"
        times.append(elapsed)
        assert rows == args.jobs, rows
    env = dict(os.environ, KUBECONFIG=server.kubeconfig, KUBECACHEDIR=str(work / "kube-cache"))
    subprocess.run(["kubectl", "get", "jobs"], env=env, capture_output=True, check=True)
    walls = []
    for _ in range(5):
        begin = time.perf_counter()
        out = subprocess.run(["kubectl", "get", "jobs"], env=env, capture_output=True, check=True, text=True).stdout
        walls.append(time.perf_counter() - begin)
        assert len(out.splitlines()) == args.jobs + 1
    server.stop()
    print(f"kubectl get jobs ({args.jobs} Jobs, {args.jobs * args.pods_per_job} pods stored): "
          f"server time median {statistics.median(times) * 1000:.1f} ms "
          f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}; goal < 20 ms); "
          f"whole kubectl command median {statistics.median(walls) * 1000:.0f} ms", flush=True)


def watcher(server, counts, index, ready, accept, idle):
    """One watching client, a process of its own (no GIL shared with the Job's driver)."""
    if idle:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    conn = server.connection()
    headers = {"Authorization": f"Bearer {server.token}", "Accept": accept}
    conn.request("GET", "/api/v1/namespaces/default/pods?watch=true&resourceVersion=" + server.start_rv, headers=headers)
    response = conn.getresponse()
    ready.release()
    events, pending, done = 0, b"", False
    while not done:
        chunk = response.read1(1 << 20)
        if not chunk:
            break
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            # Pod names start with their Job's (full objects and table rows alike).
            if b'"name":"work-' in line:
                events += 1
            elif b'"name":"stop-' in line:
                done = True
    counts[index] = events


# Watchers are forked processes; their CPU is counted once they are joined.
PROCESSES = multiprocessing.get_context("fork")


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_job(server, conn, name, completions):
    begin = time.perf_counter()
    server.request(conn, "POST", "/apis/batch/v1/namespaces/default/jobs", job_body(name, completions, 100))
    wait_complete(server, conn, name)
    return time.perf_counter() - begin


def bench_watch(args, work):
    """Alternates: no watcher; WATCHERS watchers; the same watchers scheduled SCHED_IDLE, so
    that on this 2-core machine the clients' own CPU yields to the Job and the server, as if
    they ran elsewhere (even one busy SCHED_OTHER process at nice 19 slows the Job ~1.2x)."""
    cases = [("no watcher", None), (f"{args.watchers} watchers", False),
             (f"{args.watchers} watchers under SCHED_IDLE", True)]
    walls = {name: [] for name, _ in cases}
    for run in range(args.runs_watch):
        for name, idle in cases:
            state = work / f"watch-{run}"
            shutil.rmtree(state, ignore_errors=True)
            server = Server(state)
            conn = server.connection()
            listing = server.request(conn, "GET", "/api/v1/namespaces/default/pods")
            server.start_rv = listing["metadata"]["resourceVersion"]
            processes, counts = [], PROCESSES.Array("q", args.watchers)
            if idle is not None:
                ready = PROCESSES.Semaphore(0)
                accept = TABLE if args.table else "application/json"
                for i in range(args.watchers):
                    p = PROCESSES.Process(target=watcher, args=(server, counts, i, ready, accept, idle),
                                          daemon=True)
                    p.start()
                    processes.append(p)
                for _ in range(args.watchers):
                    ready.acquire()
            server_cpu = server.cpu_seconds()
            client_cpu = children_cpu()
            wall = run_job(server, conn, "work", args.completions)
            server_cpu = server.cpu_seconds() - server_cpu
            walls[name].append(wall)
            line = f"  {name}: {wall:.2f} s; CPU: server {server_cpu:.1f} s"
            if idle is not None:
                # A last pod, to tell watchers the stream they need is over.
                server.request(conn, "POST", "/apis/batch/v1/namespaces/default/jobs", job_body("stop", 1, 1))
                for p in processes:
                    p.join()
                client_cpu = children_cpu() - client_cpu
                counts = list(counts)
                if len(set(counts)) != 1:
                    sys.exit(f"watchers disagree: {sorted(set(counts))}")
                line += f", watcher clients {client_cpu:.1f} s (to the end of their streams); each saw {counts[0]} events"
            print(line, flush=True)
            server.stop()
            shutil.rmtree(state, ignore_errors=True)
    form = "Table rows" if args.table else "full objects"
    alone = walls["no watcher"]
    for name, _ in cases[1:]:
        ratios = [w / a for w, a in zip(walls[name], alone)]
        print(f"{args.completions}-completion Job with {name} on pods ({form}) / without: "
              f"{statistics.median(ratios):.2f}x (medians {statistics.median(walls[name]):.2f} s vs "
              f"{statistics.median(alone):.2f} s; goal < 1.20x)", flush=True)


def bench_spinners(args, work):
    """The control for the watch case: the same Job beside processes that only spin and
    never touch the server, at the lowest priorities Linux has. What they cost the Job is
    what any client on these two cores costs it."""
    cases = [("alone", None), ("1 spinner at nice 19", ["nice", "-n", "19"]),
             ("2 spinners under SCHED_IDLE", ["chrt", "-i", "0"])]
    walls = {name: [] for name, _ in cases}
    for run in range(args.runs_watch):
        for name, prefix in cases:
            count = 2 if prefix and prefix[0] == "chrt" else 1
            spinners = [subprocess.Popen(prefix + [sys.executable, "-c", "while True: pass"])
                        for _ in range(count if prefix else 0)]
            state = work / f"spin-{run}"
            shutil.rmtree(state, ignore_errors=True)
            server = Server(state)
            wall = run_job(server, server.connection(), "work", args.completions)
            server.stop()
            for spinner in spinners:
                spinner.kill()
                spinner.wait()
            shutil.rmtree(state, ignore_errors=True)
            walls[name].append(wall)
            print(f"  {name}: {wall:.2f} s", flush=True)
    for name, _ in cases[1:]:
        ratios = [w / a for w, a in zip(walls[name], walls["alone"])]
        print(f"{args.completions}-completion Job beside {name} / alone: {statistics.median(ratios):.2f}x",
              flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--pods-per-job", type=int, default=100)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--completions", type=int, default=10000)
    parser.add_argument("--runs-watch", type=int, default=2)
    parser.add_argument("--table", action="store_true",
                        help="watchers ask for Table rows, as `kubectl get pods -w` does")
    parser.add_argument("--skip-list", action="store_true")
    parser.add_argument("--skip-watch", action="store_true")
    parser.add_argument("--spinners", action="store_true",
                        help="also the control: the Job beside processes that only spin")
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    work = Path(tempfile.mkdtemp(prefix="joblet-bench-serve-"))
    try:
        if not args.skip_list:
            bench_list(args, work)
        if not args.skip_watch:
            bench_watch(args, work)
        if args.spinners:
            bench_spinners(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
