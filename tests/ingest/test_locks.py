"""Per-file locks between processes, released when the holder is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from cygno_dm.ingest.locks import FileLock

HOLD = """
import sys, time
from pathlib import Path
from cygno_dm.ingest.locks import FileLock
lock = FileLock(Path(sys.argv[1]))
assert lock.acquire()
print("HELD", flush=True)
time.sleep(300)
"""


def test_second_process_cannot_take_a_held_lock_until_the_holder_dies(tmp_path):
    data = tmp_path / "run12345.mid.gz"
    data.write_bytes(b"x")
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(data)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "HELD"
        lock = FileLock(data)
        assert not lock.acquire()
        assert str(proc.pid) in lock.holder()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while not lock.acquire():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        lock.release()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_threads_of_one_process_exclude_each_other(tmp_path):
    data = tmp_path / "run12345.mid.gz"
    first, second = FileLock(data), FileLock(data)
    assert first.acquire()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()
