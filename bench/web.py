#!/usr/bin/env python3
"""The web view with a large Indexed Job, in a real headless Chromium (Debian's `chromium`).

Usage: python3 bench/web.py [--completions 100000] [--parallelism 100] [--runs 2]
                            [--paints 5] [--skip-wall]

1. Wall time: a Job of COMPLETIONS indexes (`true`, PARALLELISM at once) runs on a fresh
   `joblet serve` with no browser, and with one Chromium tab showing the Job's page from
   before the Job is created to its end (the page watching the Job, its pods and events),
   in alternation, RUNS times each; prints the ratio of the medians' runs (goal < 1.05x).
2. First paint: the page of the finished Job loaded PAINTS times in a new document; the
   time from the navigation's start to the page's `joblet:job-painted` mark (the Job's
   conditions, summary and every index's cell drawn) and to `joblet:job-loaded` (every pod
   read into the grid's tips and the timeline), against the same for a 10-index Job on the
   same server, the baseline (goal: < 1 s).
3. Memory: the tab's renderer process (resident set, Chromium's own count) and its
   JavaScript heap once the large Job's page has loaded every pod, against the same for the
   10-index Job's page (goal: < 200 MB).

Chromium is driven over its DevTools protocol on a pipe (`--remote-debugging-pipe`), so no
WebSocket library is needed.
"""

import argparse
import http.client
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOBLET = ROOT / "target" / "release" / "joblet"


class Server:
    def __init__(self, state):
        self.state = Path(state)
        self.proc = subprocess.Popen(
            [str(JOBLET), "serve", "--listen", "127.0.0.1:0", "--state-dir", str(state)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        self.kubeconfig = line.removeprefix("export KUBECONFIG=")
        self.web_ui = None
        while self.web_ui is None:
            err = self.proc.stderr.readline()
            if not err:
                sys.exit("joblet serve printed no `web UI:` line")
            if err.startswith("web UI: "):
                self.web_ui = err.removeprefix("web UI: ").strip()
        # The rest of stderr goes nowhere rather than fill the pipe.
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()
        self.base = self.web_ui.split("/?")[0]
        self.token = (self.state / "token").read_text().strip()
        self.context = ssl.create_default_context(cafile=str(self.state / "pki" / "ca.crt"))
        self.conn = http.client.HTTPSConnection(self.base.removeprefix("https://").split(":")[0],
                                                int(self.base.rsplit(":", 1)[1]),
                                                context=self.context, timeout=600)

    def request(self, method, path, body=None):
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status >= 300:
            sys.exit(f"{method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data)

    def run_job(self, name, completions, parallelism):
        """Creates the Job and waits for its Complete condition: the wall time."""
        body = json.dumps({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"completions": completions, "parallelism": parallelism,
                     "completionMode": "Indexed",
                     "template": {"spec": {"restartPolicy": "Never", "containers": [
                         {"name": "main", "image": "bench", "command": ["true"]}]}}}})
        begin = time.perf_counter()
        self.request("POST", "/apis/batch/v1/namespaces/default/jobs", body)
        while True:
            job = self.request("GET", f"/apis/batch/v1/namespaces/default/jobs/{name}")
            if any(c["type"] == "Complete" for c in job.get("status", {}).get("conditions", [])):
                return time.perf_counter() - begin
            time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def cpu_seconds(pid):
    """User + system CPU of a process and its descendants now alive."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (FileNotFoundError, ProcessLookupError):
        return total
    return total + sum(cpu_seconds(int(child)) for child in children)


class Chromium:
    """Headless Chromium with one tab, driven over DevTools on fds 3 (in) and 4 (out)."""

    def __init__(self, profile):
        to_chromium, self.write_end = os.pipe()
        self.read_end, from_chromium = os.pipe()

        def plumb():
            # Copied out of the way first: a pipe's end may be fd 3 or 4 already.
            read, write = os.dup(to_chromium), os.dup(from_chromium)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.proc = subprocess.Popen(
            ["chromium", "--headless", "--no-sandbox", "--ignore-certificate-errors",
             "--remote-debugging-pipe", f"--user-data-dir={profile}", "--window-size=1280,800",
             "about:blank"],
            preexec_fn=plumb, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chromium)
        os.close(from_chromium)
        self.next_id = 0
        self.buffer = b""
        target = None
        while target is None:
            targets = self.call("Target.getTargets")["targetInfos"]
            target = next((t["targetId"] for t in targets if t["type"] == "page"), None)
            time.sleep(0.05)
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Performance.enable", session=True)

    def call(self, method, params=None, session=False):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self.write_end, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.buffer:
                chunk = os.read(self.read_end, 1 << 20)
                if not chunk:
                    sys.exit("chromium closed its DevTools pipe")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    sys.exit(f"{method}: {reply['error']}")
                return reply["result"]

    def eval(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                           session=True)
        return result["result"].get("value")

    def navigate(self, url):
        self.call("Page.navigate", {"url": url}, session=True)

    def wait_for(self, what, expression, timeout=600):
        deadline = time.monotonic() + timeout
        while self.eval(expression) is not True:
            if time.monotonic() > deadline:
                sys.exit(f"timed out waiting for {what}: {self.eval('document.body.innerText')[:500]}")
            time.sleep(0.05)

    def sign_in(self, server):
        self.navigate("about:blank")
        self.navigate(server.web_ui)
        self.wait_for("the Jobs list", "document.querySelector('#jobs') !== null")

    def renderers(self):
        """Resident memory of each renderer process now alive: {pid: bytes}."""
        out = {}
        for line in subprocess.run(["ps", "-eo", "pid=,rss=,args="], capture_output=True,
                                   text=True).stdout.splitlines():
            pid, rss, command = line.split(None, 2)
            if "chromium" in command and "--type=renderer" in command:
                out[int(pid)] = int(rss) * 1024
        return out

    def heap(self):
        metrics = {m["name"]: m["value"] for m in self.call("Performance.getMetrics", session=True)["metrics"]}
        return metrics["JSHeapUsedSize"]

    def close(self):
        self.proc.kill()
        self.proc.wait()


def page_load(browser, server, name):
    """Opens the Job's page in a new document: ms to its first full paint and to every pod,
    and the resident memory of the renderer that grew most (the page's; a page of another
    site gets a process of its own)."""
    browser.navigate("about:blank")
    browser.wait_for("a blank page", "location.href === 'about:blank'")
    before = browser.renderers()
    browser.navigate(f"{server.base}/#/jobs/default/{name}")
    browser.wait_for("the page's marks", "performance.getEntriesByName('joblet:job-loaded').length > 0")
    painted = browser.eval("performance.getEntriesByName('joblet:job-painted')[0].startTime")
    loaded = browser.eval("performance.getEntriesByName('joblet:job-loaded')[0].startTime")
    browser.call("HeapProfiler.collectGarbage", session=True)
    after = browser.renderers()
    page = max(after, key=lambda pid: after[pid] - before.get(pid, 0))
    return painted, loaded, after[page]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--completions", type=int, default=100_000)
    parser.add_argument("--parallelism", type=int, default=100)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--paints", type=int, default=5)
    parser.add_argument("--skip-wall", action="store_true")
    args = parser.parse_args()
    if not JOBLET.exists():
        sys.exit("build first: cargo build --release")
    work = Path(tempfile.mkdtemp(prefix="joblet-web-bench-"))
    browser = Chromium(work / "profile")
    try:
        walls = {"alone": [], "page open": []}
        for run in range(0 if args.skip_wall else args.runs):
            for case in walls:
                state = work / f"wall-{run}"
                shutil.rmtree(state, ignore_errors=True)
                server = Server(state)
                if case == "page open":
                    browser.sign_in(server)
                    browser.navigate(f"{server.base}/#/jobs/default/big")
                    browser.wait_for("the page", "document.body.innerText.includes('does not exist')")
                else:
                    browser.navigate("about:blank")
                server_cpu, browser_cpu = cpu_seconds(server.proc.pid), cpu_seconds(browser.proc.pid)
                wall = server.run_job("big", args.completions, args.parallelism)
                server_cpu = cpu_seconds(server.proc.pid) - server_cpu
                browser_cpu = cpu_seconds(browser.proc.pid) - browser_cpu
                walls[case].append(wall)
                server.stop()
                shutil.rmtree(state, ignore_errors=True)
                print(f"  {case}: {wall:.2f} s; CPU: server {server_cpu:.1f} s, "
                      f"Chromium {browser_cpu:.1f} s", flush=True)
        if walls["alone"]:
            ratios = [o / a for o, a in zip(walls["page open"], walls["alone"])]
            print(f"{args.completions}-index Job with its page open / alone: {statistics.median(ratios):.3f}x "
                  f"(each run: {', '.join(f'{r:.3f}' for r in ratios)}; goal < 1.05x)", flush=True)

        server = Server(work / "paint")
        server.run_job("small", 10, 10)
        server.run_job("big", args.completions, args.parallelism)
        browser.sign_in(server)
        figures = {}
        for name in ["small", "big"]:
            loads = [page_load(browser, server, name) for _ in range(args.paints)]
            figures[name] = {
                "painted": statistics.median(p for p, _, _ in loads),
                "loaded": statistics.median(l for _, l, _ in loads),
                "rss": max(r for _, _, r in loads),
                "heap": browser.heap(),
            }
        small, big = figures["small"], figures["big"]
        print(f"first full paint of the {args.completions}-index Job's page: {big['painted']:.0f} ms median of "
              f"{args.paints}, {big['painted'] / small['painted']:.2f}x of a 10-index Job's "
              f"({small['painted']:.0f} ms); goal < 1000 ms", flush=True)
        print(f"every pod read (tips, timeline): {big['loaded']:.0f} ms, "
              f"{big['loaded'] / small['loaded']:.1f}x of the 10-index Job's ({small['loaded']:.0f} ms)", flush=True)
        mib = 1024 * 1024
        print(f"page memory: the tab's renderer {big['rss'] / mib:.0f} MiB resident (most of {args.paints} loads), JS heap {big['heap'] / mib:.0f} MiB; "
              f"{big['rss'] / small['rss']:.2f}x of the 10-index Job's page "
              f"({small['rss'] / mib:.0f} MiB, heap {small['heap'] / mib:.0f} MiB); goal < 200 MB", flush=True)
        server.stop()
    finally:
        browser.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
