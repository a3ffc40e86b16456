#!/usr/bin/env python3
"""Latency of `galley lsp`: time from a didChange notification to the publishDiagnostics that
answers it, on each example project. Speaks raw JSON-RPC over the server's stdio.

    cargo build --release && python3 bench/lsp.py [--galley target/release/galley] [--runs 40]

Edits are spaced wider than the debounce interval, as when typing at a normal pace, so each one is
evaluated; every other edit breaks the config (a port out of range) and the next one fixes it.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import queue
import resource
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


class Server:
    def __init__(self, galley: str, home: str):
        env = {**os.environ, "GALLEY_HOME": home}
        self.proc = subprocess.Popen(
            [galley, "lsp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
        )
        self.inbox: "queue.Queue[tuple[float, dict]]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.next_id = 0

    def _read(self):
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                line = line.strip()
                if not line:
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = out.read(length)
            self.inbox.put((time.perf_counter(), json.loads(body)))

    def send(self, msg: dict) -> float:
        body = json.dumps({"jsonrpc": "2.0", **msg}).encode()
        t = time.perf_counter()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()
        return t

    def request(self, method: str, params) -> dict:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        while True:
            _, msg = self.inbox.get(timeout=30)
            if msg.get("id") == self.next_id:
                return msg

    def wait_publish(self, uri: str) -> tuple[float, dict]:
        while True:
            t, msg = self.inbox.get(timeout=30)
            if msg.get("method") == "textDocument/publishDiagnostics" and msg["params"]["uri"] == uri:
                return t, msg["params"]

    def close(self):
        self.request("shutdown", None)
        self.send({"method": "exit", "params": None})
        self.proc.wait(timeout=10)


def bench(server: Server, example: pathlib.Path, runs: int, pause: float) -> list[float]:
    config = example / "galley.ncl"
    uri = config.resolve().as_uri()
    text = config.read_text()
    server.send({"method": "textDocument/didOpen", "params": {
        "textDocument": {"uri": uri, "languageId": "nickel", "version": 1, "text": text}}})
    server.wait_publish(uri)
    broken = text.rstrip().rstrip("}") + "  sandboxes.bench_broken = { image = \"x\", ports = [{ container = 1, host = 70000 }] },\n}\n"
    times = []
    for i in range(runs):
        time.sleep(pause)
        new = broken if i % 2 == 0 else text
        sent = server.send({"method": "textDocument/didChange", "params": {
            "textDocument": {"uri": uri, "version": i + 2}, "contentChanges": [{"text": new}]}})
        got, params = server.wait_publish(uri)
        codes = [d.get("code") for d in params["diagnostics"]]
        assert ("G021" in codes) == (i % 2 == 0), (example.name, i, codes)
        times.append((got - sent) * 1000)
    server.send({"method": "textDocument/didClose", "params": {"textDocument": {"uri": uri}}})
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    release = ROOT / "target" / "release" / "galley"
    ap.add_argument("--galley", default=str(release if release.exists() else ROOT / "target" / "debug" / "galley"))
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--pause", type=float, default=0.12, help="seconds between edits (wider than the debounce)")
    args = ap.parse_args()

    home = tempfile.mkdtemp(prefix="galley-bench-")
    server = Server(args.galley, home)
    server.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    server.send({"method": "initialized", "params": {}})
    print(f"galley lsp latency, didChange -> publishDiagnostics ({args.galley}, {args.runs} edits each)")
    print(f"{'example':<10} {'min':>7} {'median':>7} {'p90':>7} {'max':>7}   (ms)")
    worst = 0.0
    edits = 0
    for example in sorted((ROOT / "examples").iterdir()):
        if not (example / "galley.ncl").is_file():
            continue
        t = sorted(bench(server, example, args.runs, args.pause))
        edits += len(t) + 1
        p90 = t[int(len(t) * 0.9) - 1]
        worst = max(worst, statistics.median(t))
        print(f"{example.name:<10} {t[0]:7.1f} {statistics.median(t):7.1f} {p90:7.1f} {t[-1]:7.1f}")
    server.close()
    # CPU time of the server and every evaluator it ran: on a busy machine, wall-clock latency
    # is mostly waiting for a core, and this is what an idle machine would approach.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage.ru_utime + usage.ru_stime) * 1000 / edits
    print(f"CPU per evaluation (server and evaluator): {cpu:.1f} ms; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0 if worst < 100 else 1


if __name__ == "__main__":
    sys.exit(main())
