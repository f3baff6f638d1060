"""Plumbing of the `wkvq serve` tests (not itself a test): start a server on a free loopback
port, talk to it with Python's http.client (whole responses and server-sent events), read
/metrics, stop it."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
from typing import Dict, List, Optional, Tuple

from harness import TestFailure


class Server:
    """`wkvq serve ... --port 0` as a child process; the port is read from its stderr."""

    def __init__(self, wkvq: str, args: List[str], timeout: float = 60.0) -> None:
        self.cmd = [wkvq, "serve", "--port", "0", "--host", "127.0.0.1", *args]
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stderr_lines: List[str] = []
        self.port: Optional[int] = None
        ready = threading.Event()

        def drain() -> None:  # keeps reading stderr so the server never blocks on it
            for raw in self.proc.stderr:
                line = raw.decode("utf-8", "replace")
                self.stderr_lines.append(line)
                m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        self.reader = threading.Thread(target=drain, daemon=True)
        self.reader.start()
        if not ready.wait(timeout) or self.port is None:
            self.proc.kill()
            raise TestFailure(f"server did not start: {' '.join(self.cmd)}\n" + self.stderr())
        print(f"  server on port {self.port}: {' '.join(self.cmd[1:])}", flush=True)

    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    def conn(self, timeout: float = 60.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method: str, path: str, body=None, headers: Optional[Dict] = None,
                raw: Optional[bytes] = None) -> Tuple[int, bytes]:
        c = self.conn()
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        h = {"Content-Type": "application/json", **(headers or {})}
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        out = r.status, r.read()
        c.close()
        return out

    def post(self, path: str, body, headers: Optional[Dict] = None) -> Tuple[int, Dict]:
        status, data = self.request("POST", path, body, headers)
        return status, json.loads(data.decode())

    def stream(self, path: str, body, headers: Optional[Dict] = None) -> Tuple[int, List]:
        """POST with stream true; the parsed data events (the last is the string '[DONE]')."""
        c = self.conn()
        c.request("POST", path, body=json.dumps({**body, "stream": True}).encode(),
                  headers={"Content-Type": "application/json", **(headers or {})})
        r = c.getresponse()
        if r.status != 200:
            out = r.status, [json.loads(r.read().decode())]
            c.close()
            return out
        events = parse_sse(r.read().decode("utf-8"))
        c.close()
        return 200, events

    def metrics(self) -> Dict[str, float]:
        status, data = self.request("GET", "/metrics")
        if status != 200:
            raise TestFailure(f"/metrics answered {status}")
        out = {}
        for line in data.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def wait_idle(self, timeout: float = 10.0) -> Dict[str, float]:
        """/metrics once no sequence is active or queued and no KV block is held."""
        end = time.time() + timeout
        while True:
            m = self.metrics()
            if (m["wkvq_active_sequences"] == 0 and m["wkvq_queued_sequences"] == 0 and
                    m["wkvq_kv_blocks_in_use"] == 0) or time.time() > end:
                return m
            time.sleep(0.05)

    def rss_kb(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise TestFailure("no VmRSS")

    def terminate(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise TestFailure(f"server did not exit {timeout:.0f}s after SIGTERM")
        self.reader.join(5)
        return rc


def parse_sse(text: str) -> List:
    events = []
    for block in text.split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: "):
                payload = line[len("data: "):]
                events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def stream_text(events: List, chat: bool = False) -> str:
    text = ""
    for e in events:
        if isinstance(e, dict) and "choices" in e:
            c = e["choices"][0]
            text += (c["delta"].get("content") or "") if chat else c["text"]
    return text
