#!/usr/bin/env python3
"""`joblet serve` under many clients while a big Job runs.

Usage: python3 bench/load.py [--clients 200] [--seconds 60] [--think-ms 100]
                             [--completions 5000] [--parallelism 50] [--pod-seconds 0.5]

The clients run in other processes (40, each with CLIENTS/40 threads), each on its own kept-alive
TLS connection to 127.0.0.1, in a loop: a request, then THINK_MS of think time. A request is a
get of the Job (50%), a list of its pods, 100 per page (20%), a merge patch of one of the
Job's labels without a resourceVersion (20%), or a watch of its pods from the resourceVersion
of a one-item list, read for a second (10%; the time measured is to the watch's response
headers). Every answer but a 2xx is an error, and so is a dropped connection.

1. Yardstick: the Job (COMPLETIONS pods of `sleep POD_SECONDS`, parallelism PARALLELISM) runs
   with no client; its wall time is taken.
2. Baseline: the clients for SECONDS on the idle server (the finished Job and its pods stored).
3. Load: the same Job again, and the clients for SECONDS while it runs.

Prints requests/s, p50 and p99 per kind of request and errors for 2 and 3, the p99 ratio 3:2,
the Job's wall-time ratio 3:1, and the server's peak RSS.
"""

import argparse
import http.client
import json
import multiprocessing
import random
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import Server  # noqa: E402

# Few threads per process: a response waits for its thread's turn at the GIL, which the
# latencies would count.
PROCESSES = 40
KINDS = ("get", "list", "patch", "watch")


def job_body(name, completions, parallelism, pod_seconds):
    return json.dumps({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"completions": completions, "parallelism": parallelism, "backoffLimit": 0,
                 "template": {"spec": {"restartPolicy": "Never", "containers": [
                     {"name": "main", "image": "bench", "command": ["sleep", str(pod_seconds)]}]}}}})


def client(server, job, until, think, seed, results):
    """One client's loop; appends (kind, seconds, ok) per request to results."""
    rng = random.Random(seed)
    conn = server.connection()
    base = f"Bearer {server.token}"
    job_path = f"/apis/batch/v1/namespaces/default/jobs/{job}"
    pods_path = f"/api/v1/namespaces/default/pods?labelSelector=job-name%3D{job}"

    def call(method, path, body=None, content_type=None, read=True):
        nonlocal conn
        headers = {"Authorization": base, "Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        begin = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            at_headers = time.perf_counter()
            data = response.read()
            ok = 200 <= response.status < 300
            if not ok:
                print(f"{method} {path}: {response.status} {data[:200]!r}", file=sys.stderr)
        except (OSError, http.client.HTTPException) as e:
            print(f"{method} {path}: {e!r}", file=sys.stderr)
            conn.close()
            conn = server.connection()
            return False, time.perf_counter() - begin, None
        elapsed = (time.perf_counter() if read else at_headers) - begin
        return ok, elapsed, data

    while time.monotonic() < until:
        roll = rng.random()
        if roll < 0.5:
            ok, elapsed, _ = call("GET", job_path)
            results.append(("get", elapsed, ok))
        elif roll < 0.7:
            ok, elapsed, _ = call("GET", f"{pods_path}&limit=100")
            results.append(("list", elapsed, ok))
        elif roll < 0.9:
            patch = json.dumps({"metadata": {"labels": {f"client-{seed % 50}": str(rng.randrange(10**6))}}})
            ok, elapsed, _ = call("PATCH", job_path, patch, "application/merge-patch+json")
            results.append(("patch", elapsed, ok))
        else:
            ok, elapsed, data = call("GET", f"{pods_path}&limit=1")
            results.append(("list", elapsed, ok))
            if ok:
                rv = json.loads(data)["metadata"]["resourceVersion"]
                ok, elapsed, _ = call("GET", f"{pods_path}&watch=1&resourceVersion={rv}&timeoutSeconds=1",
                                      read=False)
                results.append(("watch", elapsed, ok))
        time.sleep(think)


class Remote:
    """The server as another process sees it: its port, token and CA."""

    def __init__(self, port, token, ca):
        self.port, self.token, self.ca = port, token, ca

    def connection(self):
        context = ssl.create_default_context(cafile=self.ca)
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=30)


def process_clients(args):
    remote, job, until, think, seeds = args
    server = Remote(*remote)
    results = []
    threads = [threading.Thread(target=client, args=(server, job, until, think, s, results)) for s in seeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.process_time()


def load(server, job, args):
    """Runs the clients for args.seconds; returns their (kind, seconds, ok) records."""
    until = time.monotonic() + args.seconds
    seeds = list(range(args.clients))
    remote = (server.port, server.token, str(server.state / "pki" / "ca.crt"))
    chunks = [(remote, job, until, args.think_ms / 1000, seeds[i::PROCESSES]) for i in range(PROCESSES)]
    cpu_before = server.cpu_seconds()
    with multiprocessing.Pool(PROCESSES) as pool:
        parts = pool.map(process_clients, chunks)
    server_cpu = server.cpu_seconds() - cpu_before
    clients_cpu = sum(cpu for _, cpu in parts)
    print(f"   CPU: server {server_cpu:.1f} s, clients {clients_cpu:.1f} s, of {2 * args.seconds:.0f} s on two cores")
    return [r for records, _ in parts for r in records]


def report(label, records, seconds):
    errors = sum(1 for _, _, ok in records if not ok)
    print(f"{label}: {len(records) / seconds:.0f} requests/s, {errors} errors of {len(records)}")
    p99s = {}
    for kind in KINDS:
        times = sorted(t for k, t, _ in records if k == kind)
        if not times:
            continue
        p50 = statistics.median(times) * 1000
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))] * 1000
        p99s[kind] = p99
        print(f"  {kind:5} {len(times):7} requests  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
    return p99s, errors


def wait_complete(server, conn, name):
    while True:
        job = server.request(conn, "GET", f"/apis/batch/v1/namespaces/default/jobs/{name}")
        conditions = [c["type"] for c in job.get("status", {}).get("conditions", [])]
        if "Complete" in conditions or "Failed" in conditions:
            if "Failed" in conditions:
                sys.exit(f"job {name} failed: {job['status']}")
            return


def peak_rss_mib(server):
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--think-ms", type=float, default=100)
    parser.add_argument("--completions", type=int, default=5000)
    parser.add_argument("--parallelism", type=int, default=50)
    parser.add_argument("--pod-seconds", type=float, default=0.5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="joblet-load-") as work:
        server = Server(Path(work) / "state")
        conn = server.connection()
        body = lambda name: job_body(name, args.completions, args.parallelism, args.pod_seconds)

        started = time.perf_counter()
        server.request(conn, "POST", "/apis/batch/v1/namespaces/default/jobs", body("alone"))
        wait_complete(server, conn, "alone")
        alone = time.perf_counter() - started
        print(f"1. the Job alone: {args.completions} pods in {alone:.1f} s", flush=True)

        idle = load(server, "alone", args)
        idle_p99, idle_errors = report(f"2. {args.clients} clients, idle server", idle, args.seconds)

        conn = server.connection()  # the first one idled past the server's 30 s
        server.request(conn, "POST", "/apis/batch/v1/namespaces/default/jobs", body("busy"))
        started = time.perf_counter()
        done = threading.Event()
        job_seconds = []

        def watch_job():
            watcher = server.connection()
            wait_complete(server, watcher, "busy")
            job_seconds.append(time.perf_counter() - started)
            done.set()

        threading.Thread(target=watch_job, daemon=True).start()
        busy = load(server, "busy", args)
        busy_p99, busy_errors = report(f"3. {args.clients} clients while the Job runs", busy, args.seconds)
        done.wait()
        print(f"the Job under load: {job_seconds[0]:.1f} s, {job_seconds[0] / alone:.2f}x of alone")
        for kind in KINDS:
            if kind in busy_p99 and kind in idle_p99:
                print(f"p99 {kind}: {busy_p99[kind] / idle_p99[kind]:.2f}x of the idle server's")
        print(f"server peak RSS: {peak_rss_mib(server):.0f} MiB")
        server.stop()
        if idle_errors or busy_errors:
            sys.exit(f"{idle_errors + busy_errors} errors")


if __name__ == "__main__":
    main()
