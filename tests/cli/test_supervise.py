"""The restart policy, without processes: a fake child that dies on cue, a fake clock."""

from __future__ import annotations

import pytest

from cli.supervise import Child, CrashLoop, RestartPolicy, Supervisor, describe_exit


class FakeChild(Child):
    def __init__(self, *, fail_ready: int = 0) -> None:
        super().__init__(name="model server", argv=[], env={}, ready_url="")
        self.alive = True
        self.starts = 0
        self.fail_ready = fail_ready

    def start(self) -> None:
        self.starts += 1
        self.alive = True

    def running(self) -> bool:
        return self.alive

    def wait_ready(self, *, timeout: float = 0) -> None:
        if self.fail_ready:
            self.fail_ready -= 1
            self.alive = False
            raise RuntimeError("the model server exited (exit status 1) before it was ready")

    def kill(self) -> None:
        self.alive = False


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def supervisor(child: FakeChild, clock: Clock, **policy: float) -> tuple[Supervisor, list[str]]:
    logs: list[str] = []
    return (
        Supervisor(
            children=[child],
            policy=RestartPolicy(**policy),  # type: ignore[arg-type]
            log=logs.append,
            clock=clock,
            sleep=clock.sleep,
        ),
        logs,
    )


def test_each_restart_in_the_window_doubles_the_backoff_and_is_logged() -> None:
    child, clock = FakeChild(), Clock()
    sup, logs = supervisor(child, clock, max_restarts=5, window_s=60)
    for _ in range(4):
        child.alive = False
        sup.check()
        clock.now += 1
    assert clock.slept == [0.5, 1.0, 2.0, 4.0]
    assert child.starts == 4
    assert "restarting it in 0.5 s (restart 1 in the last 60 s)" in logs[0]
    assert logs[1] == "modelway: the model server is back (pid None)"


def test_restarts_older_than_the_window_are_forgotten() -> None:
    child, clock = FakeChild(), Clock()
    sup, _ = supervisor(child, clock, max_restarts=2, window_s=10)
    for _ in range(5):  # one death every 11 s never makes a crash loop
        child.alive = False
        sup.check()
        clock.now += 11
    assert clock.slept == [0.5] * 5


def test_a_crash_loop_gives_up_with_a_message_naming_the_child() -> None:
    child, clock = FakeChild(fail_ready=10), Clock()
    sup, logs = supervisor(child, clock, max_restarts=3, window_s=60)
    child.alive = False
    with pytest.raises(CrashLoop) as info:
        sup.check()
    assert child.starts == 3
    assert clock.slept == [0.5, 1.0, 2.0]
    assert "the model server keeps dying: restarted 3 times in the last 60 s" in str(info.value)
    assert sum("before it was ready" in line for line in logs) == 3


def test_exit_descriptions() -> None:
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(3) == "exit status 3"
    assert describe_exit(None) == "still running"
