"""One `mdeploy serve` process for the serving tests: started on free ports (`--rest-port 0
--grpc-port 0`), its ports and model states read from its log, always stopped (`stop()` in a
`finally`, or the context manager)."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

# `mdeploy serve: REST (TF Serving v1, KServe v2) on http://127.0.0.1:PORT`
PORT_RE = re.compile(r"^mdeploy serve: (REST|gRPC) \(.*\) on (https?)://[^ ]*:(\d+)\s*$")
# `model 'NAME' version V: serving …` / `…: not served, it failed to load: WHY`
SERVING_RE = re.compile(r"^mdeploy serve: model '([^']+)' version (\d+): serving ")
FAILED_RE = re.compile(r"^mdeploy serve: model '([^']+)' version (\d+): not served, (.*)$")
MAX_LOG_LINES = 20_000


class ServerError(Exception):
    """The server did not start, or did not get ready in time."""


class Server:
    def __init__(self, mdeploy: Path, model: Path, args: list[str], tls_ca: Path | None = None):
        self.cmd = [
            str(mdeploy),
            "serve",
            str(model),
            "--host",
            "127.0.0.1",
            "--rest-port",
            "0",
            "--grpc-port",
            "0",
            "--poll-seconds",
            "0",
            "--no-access-log",
            *args,
        ]
        self.tls_ca = tls_ca
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []
        self.rest_port: int | None = None
        self.grpc_port: int | None = None
        self.served: dict[str, str | None] = {}  # model → None (serving) or why it failed
        self._lock = threading.Lock()

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> "Server":
        """Starts the process and waits (at most `timeout` s) until it logged both ports."""
        self.proc = subprocess.Popen(
            self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, errors="replace",
        )
        threading.Thread(target=self._read_log, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.rest_port and self.grpc_port:
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise ServerError(f"no ports logged within {timeout:.0f} s: {self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # SIGTERM: the server's graceful shutdown
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _read_log(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            with self._lock:
                if len(self.lines) < MAX_LOG_LINES:
                    self.lines.append(line)
                if m := PORT_RE.match(line):
                    port = int(m.group(3))
                    if m.group(1) == "REST":
                        self.rest_port = port
                    else:
                        self.grpc_port = port
                elif m := SERVING_RE.match(line):
                    self.served[m.group(1)] = None
                elif m := FAILED_RE.match(line):
                    self.served[m.group(1)] = m.group(3)

    def log_tail(self, n: int = 5) -> str:
        with self._lock:
            return " | ".join(self.lines[-n:]) or "(no output)"

    def wait_models(self, names: list[str], timeout: float) -> dict[str, str | None]:
        """Waits until every model is serving or failed to load (at most `timeout` s); returns
        model → None (serving) or the reason it is not served."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            with self._lock:
                if all(n in self.served for n in names):
                    break
            time.sleep(0.1)
        with self._lock:
            why = "server exited" if not self.alive() else f"not loaded within {timeout:.0f} s"
            return {n: self.served.get(n, why) for n in names}

    # ------------------------------------------------------------ plain HTTP

    @property
    def scheme(self) -> str:
        return "https" if self.tls_ca else "http"

    def rest_url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.rest_port}{path}"

    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def http(
        self,
        method: str,
        path: str,
        body: bytes | dict | None = None,
        headers: dict | None = None,
        timeout: float = 120.0,
    ) -> tuple[int, object]:
        """(status, parsed JSON or text) of one request with urllib; an HTTP error status is a
        result, not an exception."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        req = urllib.request.Request(self.rest_url(path), data=data, method=method)
        req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        ctx = ssl.create_default_context(cafile=str(self.tls_ca)) if self.tls_ca else None
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")
