"""Runs the real `sluice` binary for end-to-end tests.

``Gateway(config_yaml, env=...)`` writes the configuration to a temporary file, starts
``sluice serve`` on free loopback ports with the JSON access log on, and returns once the admin
server says ready (polling ``/readyz`` — the process's own readiness, not a sleep). Everything the
process writes (logs and access log) is captured, so tests can scan it for leaked secrets.

The binary is ``$SLUICE_BIN`` (set by scripts/test.sh), else ``target/debug/sluice``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary() -> str:
    path = os.environ.get("SLUICE_BIN") or str(ROOT / "target" / "debug" / "sluice")
    if not os.path.exists(path):
        raise RuntimeError(f"sluice binary not found at {path}: run `cargo build -p sluice` first")
    return path


class Gateway:
    """A running gateway. ``{port}`` in the config text is replaced by the listener port."""

    def __init__(self, config: str, env: dict[str, str] | None = None, args: list[str] | None = None):
        self.port = free_port()
        self.admin_port = free_port()
        self.dir = tempfile.TemporaryDirectory(prefix="sluice-e2e-")
        self.config_path = Path(self.dir.name) / "config.yaml"
        self.config_path.write_text(config.replace("{port}", str(self.port)))
        self.access_log_path = Path(self.dir.name) / "access.log"
        self.output_path = Path(self.dir.name) / "output.log"
        self.env = {**os.environ, **(env or {})}
        self.args = list(args or [])
        self.proc: subprocess.Popen | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.origin}/v1"

    def start(self) -> "Gateway":
        out = open(self.output_path, "wb")
        self.proc = subprocess.Popen(
            [
                binary(), "serve",
                "--config", str(self.config_path),
                "--admin-addr", f"127.0.0.1:{self.admin_port}",
                "--access-log", str(self.access_log_path),
                "--log-format", "json",
                "--log-level", "debug",
                *self.args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sluice exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.02)  # polling the process's own readiness signal, not synchronising on time
        raise RuntimeError(f"sluice did not become ready:\n{self.output()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "Gateway":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        self.dir.cleanup()

    def admin(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5) as r:
            return r.read().decode()

    def admin_call(self, method: str, path: str, token: str | None, body: dict | None = None) -> tuple[int, object]:
        """An admin API call; returns (status, parsed JSON body)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", data=data, method=method)
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def metrics(self) -> str:
        return self.admin("/metrics")

    def output(self) -> str:
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    def access_log(self, wait_for: int = 0, timeout: float = 5.0) -> list[dict]:
        """The access-log records so far; waits (polling the file) until at least ``wait_for`` exist.

        Records are written when a response body ends, off the request path, so a test that just
        read a response may need to wait for its line."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.access_log_path.read_text() if self.access_log_path.exists() else ""
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
            if len(records) >= wait_for or time.monotonic() > deadline:
                return records
            time.sleep(0.02)


def backend_for(name: str, port: int, namespace: str = "default") -> str:
    """A WG `Backend` pointing at a simulator on loopback (plain HTTP)."""
    return f"""
apiVersion: gateway.networking.k8s.io/v1alpha1
kind: Backend
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  destination:
    type: IP
    ip: {{address: 127.0.0.1}}
    ports: [{{number: {port}, protocol: HTTP}}]
"""


GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: sluice
  addresses: [{value: 127.0.0.1}]
  listeners: [{name: http, port: {port}, protocol: HTTP}]
"""
