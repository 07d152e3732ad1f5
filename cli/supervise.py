"""The local stack's process supervisor: what SageMaker does for a container, on a laptop.

``modelway up`` runs the model server and the router as child processes. A child that dies
(a crash, the OOM killer, ``kill -9``) is started again after a backoff that doubles with each
restart in the window (0.5 s, 1 s, 2 s … at most 10 s), and every restart is logged. While the
model server is down the router keeps answering: ``503 model_unavailable`` with
``Retry-After``, as on AWS while SageMaker replaces a failed container. A child that keeps dying
(more than ``max_restarts`` restarts within ``window_s``) is a crash loop: restarting it again
would only hide the cause, so the supervisor gives up with a message naming the child, how
often it died and how, and ``modelway up`` stops the stack and exits with status 1.

Stopping drains, in order: the router first (it stops accepting, finishes the requests it has,
which still need the model server), then the model server; each gets ``drain_s`` before it is
killed. The children run in their own process group, so a terminal's Ctrl-C reaches only the
supervisor, which then stops them in that order instead of all at once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

READY_TIMEOUT_SECONDS = 60.0


class CrashLoop(RuntimeError):
    """A child died more often than the restart policy allows."""


@dataclass(frozen=True)
class RestartPolicy:
    max_restarts: int = 5
    window_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0

    def backoff(self, recent_restarts: int) -> float:
        return float(min(self.backoff_max_s, self.backoff_initial_s * 2**recent_restarts))


@dataclass
class Child:
    """One supervised process: how to start it and how to tell that it is ready."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ready_url: str
    proc: subprocess.Popen[bytes] | None = None
    restarts: deque[float] = field(default_factory=deque)

    def start(self) -> None:
        # Its own process group: a terminal's Ctrl-C must not stop it behind the supervisor's
        # back (the router has to drain before the model server stops).
        self.proc = subprocess.Popen(self.argv, env=self.env, process_group=0)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, *, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the {self.name} exited ({describe_exit(self.proc.returncode)}) "
                    "before it was ready"
                )
            try:
                with urllib.request.urlopen(self.ready_url, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.ready_url} did not become ready within {timeout:.0f} s")

    def stop(self, *, drain_s: float) -> None:
        """SIGINT (uvicorn then stops accepting and finishes what it has), killed after
        ``drain_s``."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=drain_s)
        except subprocess.TimeoutExpired:
            print(
                f"modelway: the {self.name} did not stop within {drain_s:.0f} s; killing it",
                file=sys.stderr,
                flush=True,
            )
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


class Supervisor:
    """Restarts dead children with backoff; raises ``CrashLoop`` when one keeps dying."""

    def __init__(
        self,
        *,
        children: list[Child],
        policy: RestartPolicy,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.children = children
        self.policy = policy
        self._log = log or _stderr
        self._clock = clock
        self._sleep = sleep

    def check(self) -> None:
        """One pass: every child that died is restarted (blocking through its backoff and
        startup); a child in a crash loop raises ``CrashLoop``."""
        for child in self.children:
            while not child.running():
                self._restart(child)

    def _restart(self, child: Child) -> None:
        code = child.proc.returncode if child.proc is not None else None
        now = self._clock()
        while child.restarts and now - child.restarts[0] > self.policy.window_s:
            child.restarts.popleft()
        recent = len(child.restarts)
        if recent >= self.policy.max_restarts:
            raise CrashLoop(
                f"the {child.name} keeps dying: restarted {recent} times in the last "
                f"{self.policy.window_s:.0f} s and it exited again ({describe_exit(code)}); "
                "giving up. Its own output above says why (a port in use, a model that cannot "
                "load, memory)."
            )
        delay = self.policy.backoff(recent)
        self._log(
            f"modelway: the {child.name} (pid {child.pid}) exited ({describe_exit(code)}); "
            f"restarting it in {delay:.1f} s (restart {recent + 1} in the last "
            f"{self.policy.window_s:.0f} s)"
        )
        self._sleep(delay)
        child.restarts.append(self._clock())
        child.start()
        try:
            child.wait_ready()
        except RuntimeError as exc:
            self._log(f"modelway: {exc}")
            child.kill()
            return
        self._log(f"modelway: the {child.name} is back (pid {child.pid})")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
