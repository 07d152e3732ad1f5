"""Drive ``modelway up`` as a user does: a child process, its output read line by line."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BANNER_END = "Ctrl-C stops everything."


@dataclass
class Up:
    proc: subprocess.Popen[str]
    lines: queue.Queue[str]
    seen: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        self.drain()
        return "".join(self.seen)

    def drain(self) -> None:
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return

    def wait_for(self, pattern: str, *, timeout: float) -> re.Match[str]:
        """The first match of ``pattern`` in the output, waiting up to ``timeout`` for it."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.output, flags=re.M)
            if match:
                return match
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in the output:\n{self.output}")
            with contextlib.suppress(queue.Empty):
                self.seen.append(self.lines.get(timeout=0.2))

    def value(self, pattern: str) -> str:
        return self.wait_for(pattern, timeout=0).group(1)


def start_up(
    home: Path, port: int, serving_port: int, *extra: str
) -> tuple[subprocess.Popen[str], list[str]]:
    up = launch(home, port, serving_port, *extra)
    return up.proc, up.seen


def launch(home: Path, port: int, serving_port: int, *extra: str) -> Up:
    """``modelway up --no-watch`` on the given ports, returned once its banner is printed."""
    env = {**os.environ, "MODELWAY_HOME": str(home), "MODELWAY_ENV": "local"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "up", "--port", str(port),
         "--serving-port", str(serving_port), "--no-watch", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    up = Up(proc=proc, lines=lines)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        up.seen.append(line)
        if BANNER_END in line:
            return up
    proc.kill()
    raise AssertionError("modelway up never became ready:\n" + "".join(up.seen))


def stop(proc: subprocess.Popen[str], signum: int = signal.SIGINT) -> int:
    proc.send_signal(signum)
    return proc.wait(timeout=60)
