"""A real ``redis-server`` on a free loopback port, for tests of replicas that share state.

Readiness is the server answering ``PING`` (polled), never a fixed wait.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time

from gateway import free_port


class RedisServer:
    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not found: install the Debian package redis-server")
        self.exe = exe
        self.port = free_port()
        self.dir = tempfile.TemporaryDirectory(prefix="sluice-redis-")
        self.start()

    def start(self) -> None:
        """Starts the server on its port (again, after ``kill``: empty, nothing is persisted)."""
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir.name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            time.sleep(0.02)  # polling the server's own readiness
        raise RuntimeError("redis-server did not answer PING")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """One command over a fresh connection; the raw reply (enough for INFO and simple replies)."""
        payload = f"*{len(args)}\r\n".encode() + b"".join(
            f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(payload)
            reply = s.recv(65536)
            if reply.startswith(b"$"):  # a bulk string: read to its announced length
                header, _, rest = reply.partition(b"\r\n")
                size = int(header[1:])
                while len(rest) < size:
                    rest += s.recv(65536)
                return rest[:size]
            return reply

    def kill(self) -> None:
        """Stops the server abruptly, keeping its port and directory for ``start``."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.dir.cleanup()

    def __enter__(self) -> "RedisServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
