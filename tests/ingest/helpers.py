"""Run files and servers for the ingest tests."""

from __future__ import annotations

import gzip
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def run_file(directory: Path, run: int, size: int = 4096, seed: int | None = None, tag: str | None = "LNGS") -> Path:
    """A gzip run file of about `size` compressed bytes (random payload) at <dir>/<tag>/run<N>.mid.gz."""
    where = directory / tag if tag else directory
    where.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed if seed is not None else run)
    payload = rnd.randbytes(max(1, size))
    path = where / f"run{run:05d}.mid.gz"
    path.write_bytes(gzip.compress(payload, compresslevel=1, mtime=0))  # same run, same bytes
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on at host."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Moto:
    """A real moto S3 server in a subprocess on a loopback address."""

    def __init__(self, host: str, log: Path, port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log = log
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Moto:
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
                                     stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(self.endpoint + "/", timeout=1)
                return self
            except requests.RequestException:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"moto exited; see {self.log}") from None
                time.sleep(0.2)
        raise RuntimeError("moto did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


def sparse_file(path: Path, size: int) -> Path:
    """A sparse file of `size` bytes (no disk blocks)."""
    with open(path, "wb") as f:
        f.truncate(size)
    os.utime(path)
    return path
