"""Dynamic batching, driven deterministically: the worker is parked inside a run while the
requests under test queue up, then released; what it does next is counted, not timed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import numpy as np
import pytest

from serving.batching import DynamicBatcher, Tensors
from serving.exceptions import ModelFailure, Overloaded


class FakeSession:
    """Doubles ``x``; records each run's input shape; the first run can be held open."""

    def __init__(self, *, hold_first: bool = True) -> None:
        self.shapes: list[tuple[int, ...]] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, inputs: Tensors) -> Tensors:
        x = inputs["x"]
        self.shapes.append(x.shape)
        self.entered.set()
        self.release.wait(10)
        if (x < 0).any():
            raise RuntimeError("negative input")  # a data-dependent model failure
        return {"y": x * 2, "n": np.full(len(x), len(x), dtype=np.int64)}


@pytest.fixture
def session() -> FakeSession:
    return FakeSession()


MakeBatcher = Callable[..., DynamicBatcher]


@pytest.fixture
def make_batcher(session: FakeSession) -> Iterator[MakeBatcher]:
    made: list[DynamicBatcher] = []

    def factory(**kwargs: object) -> DynamicBatcher:
        options: dict[str, object] = {"max_queue_delay_s": 0.0, "name": "test"}
        options.update(kwargs)
        batcher = DynamicBatcher(run=session, **options)  # type: ignore[arg-type]
        made.append(batcher)
        return batcher

    yield factory
    session.release.set()
    for batcher in made:
        batcher.close()


def _park(batcher: DynamicBatcher, session: FakeSession) -> Future[Tensors]:
    """Occupy the worker with one request so the next ones queue behind it."""
    blocker = batcher.submit({"x": np.zeros((1, 3), np.float32)})
    assert session.entered.wait(10)
    return blocker


def test_queued_requests_are_coalesced_into_one_run(
    make_batcher: MakeBatcher, session: FakeSession
) -> None:
    batcher = make_batcher(max_batch_size=32)
    _park(batcher, session)
    inputs = [np.full((rows, 3), i, np.float32) for i, rows in enumerate([1, 2, 1, 3], start=1)]
    futures = [batcher.submit({"x": x}) for x in inputs]
    session.release.set()
    results = [f.result(10) for f in futures]

    assert session.shapes == [(1, 3), (7, 3)]  # the parked run, then ONE run for all four
    for x, result in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(result["y"], x * 2)  # each caller gets its own rows
        assert result["n"].tolist() == [7] * len(x)
    assert batcher.stats.requests_per_run == {1: 1, 4: 1}
    assert batcher.stats.rows == 8


def test_batches_respect_max_batch_size(make_batcher: MakeBatcher, session: FakeSession) -> None:
    batcher = make_batcher(max_batch_size=4)
    _park(batcher, session)
    futures = [batcher.submit({"x": np.ones((1, 3), np.float32)}) for _ in range(10)]
    session.release.set()
    for f in futures:
        f.result(10)
    assert session.shapes[1:] == [(4, 3), (4, 3), (2, 3)]


def test_a_request_larger_than_the_batch_limit_runs_alone(
    make_batcher: MakeBatcher, session: FakeSession
) -> None:
    batcher = make_batcher(max_batch_size=4)
    _park(batcher, session)
    big = batcher.submit({"x": np.ones((9, 3), np.float32)})
    small = batcher.submit({"x": np.ones((1, 3), np.float32)})
    session.release.set()
    assert big.result(10)["y"].shape == (9, 3)
    assert small.result(10)["y"].shape == (1, 3)
    assert session.shapes[1:] == [(9, 3), (1, 3)]


def test_requests_with_other_non_batch_dims_are_never_mixed(
    make_batcher: MakeBatcher, session: FakeSession
) -> None:
    batcher = make_batcher(max_batch_size=32)
    _park(batcher, session)
    a1 = batcher.submit({"x": np.ones((1, 3), np.float32)})
    b1 = batcher.submit({"x": np.ones((1, 5), np.float32)})
    a2 = batcher.submit({"x": np.ones((2, 3), np.float32)})
    c1 = batcher.submit({"x": np.ones((1, 3), np.float64)})  # another dtype is another batch
    b2 = batcher.submit({"x": np.ones((1, 5), np.float32)})
    session.release.set()
    for f in (a1, a2, b1, b2, c1):
        f.result(10)
    # Oldest first: the 3-wide requests together, then the 5-wide ones, then the float64 one.
    assert session.shapes[1:] == [(3, 3), (2, 5), (1, 3)]
    assert b1.result()["y"].shape == (1, 5)


def test_a_full_queue_refuses_with_overloaded(
    make_batcher: MakeBatcher, session: FakeSession
) -> None:
    batcher = make_batcher(max_queue_size=2)
    _park(batcher, session)
    queued = [batcher.submit({"x": np.ones((1, 3), np.float32)}) for _ in range(2)]
    with pytest.raises(Overloaded) as info:
        batcher.submit({"x": np.ones((1, 3), np.float32)})
    assert info.value.status == 503
    assert info.value.retry_after == 1
    session.release.set()
    for f in queued:
        f.result(10)
    batcher.submit({"x": np.ones((1, 3), np.float32)}).result(10)  # room again


def test_one_bad_request_does_not_fail_its_batch_mates(
    make_batcher: MakeBatcher, session: FakeSession
) -> None:
    batcher = make_batcher(max_batch_size=32)
    _park(batcher, session)
    good = batcher.submit({"x": np.ones((1, 3), np.float32)})
    bad = batcher.submit({"x": -np.ones((1, 3), np.float32)})
    also_good = batcher.submit({"x": np.ones((2, 3), np.float32)})
    session.release.set()
    assert good.result(10)["y"].tolist() == [[2.0, 2.0, 2.0]]
    assert also_good.result(10)["y"].shape == (2, 3)
    with pytest.raises(ModelFailure, match="negative input"):
        bad.result(10)
    # The failed batch of three, then each alone.
    assert session.shapes[1:] == [(4, 3), (1, 3), (1, 3), (2, 3)]


def test_outputs_without_a_batch_axis_are_not_split_wrongly() -> None:
    gate = threading.Event()

    def summing(inputs: Tensors) -> Tensors:
        gate.wait(10)
        return {"total": np.array([inputs["x"].sum()])}  # one row whatever the batch

    batcher = DynamicBatcher(run=summing, name="sum", max_queue_delay_s=0.0)
    try:
        first = batcher.submit({"x": np.ones((1, 3), np.float32)})
        second = batcher.submit({"x": np.ones((1, 3), np.float32)})
        third = batcher.submit({"x": np.ones((2, 3), np.float32)})
        gate.set()
        # Whatever got batched, each caller sees only its own rows' sum.
        assert first.result(10)["total"].tolist() == [3.0]
        assert second.result(10)["total"].tolist() == [3.0]
        assert third.result(10)["total"].tolist() == [6.0]
    finally:
        batcher.close()


def test_unbatchable_models_run_each_request_alone(
    make_batcher: MakeBatcher, session: FakeSession
) -> None:
    batcher = make_batcher(max_batch_size=32, batchable=False)
    _park(batcher, session)
    futures = [batcher.submit({"x": np.ones((1, 3), np.float32)}) for _ in range(3)]
    session.release.set()
    for f in futures:
        f.result(10)
    assert session.shapes[1:] == [(1, 3)] * 3


def test_close_finishes_queued_work_then_refuses(
    make_batcher: MakeBatcher, session: FakeSession
) -> None:
    batcher = make_batcher()
    _park(batcher, session)
    queued = batcher.submit({"x": np.ones((1, 3), np.float32)})
    closer = threading.Thread(target=batcher.close)
    closer.start()
    session.release.set()
    closer.join(10)
    assert queued.result(10)["y"].shape == (1, 3)
    with pytest.raises(Overloaded):
        batcher.submit({"x": np.ones((1, 3), np.float32)})


def test_cancelled_requests_are_skipped(make_batcher: MakeBatcher, session: FakeSession) -> None:
    batcher = make_batcher()
    _park(batcher, session)
    gone = batcher.submit({"x": np.ones((5, 3), np.float32)})
    kept = batcher.submit({"x": np.ones((1, 3), np.float32)})
    assert gone.cancel()  # the client disconnected
    session.release.set()
    kept.result(10)
    assert session.shapes[1:] == [(1, 3)]


def test_a_lone_request_does_not_wait_for_company(session: FakeSession) -> None:
    """Nothing announced, no recent load: even a long queue delay costs it nothing."""
    session.release.set()
    batcher = DynamicBatcher(run=session, name="lone", max_batch_size=8, max_queue_delay_s=600)
    try:
        # Bounded wait only so a regression fails instead of hanging for ten minutes.
        batcher.submit({"x": np.ones((1, 3), np.float32)}).result(timeout=30)
        assert session.shapes == [(1, 3)]
    finally:
        batcher.close()


def test_an_announced_request_is_waited_for(session: FakeSession) -> None:
    session.release.set()
    batcher = DynamicBatcher(run=session, name="ann", max_batch_size=8, max_queue_delay_s=600)
    try:
        batcher.announce()  # the server is still decoding this one
        first = batcher.submit({"x": np.ones((1, 3), np.float32)})
        second = batcher.submit({"x": np.ones((2, 3), np.float32)}, announced=True)
        first.result(timeout=30)  # runs as soon as the announced one is in, not after 600 s
        second.result(timeout=30)
        assert session.shapes == [(3, 3)]
    finally:
        batcher.close()


def test_a_withdrawn_announcement_releases_the_wait(session: FakeSession) -> None:
    session.release.set()
    batcher = DynamicBatcher(run=session, name="wd", max_batch_size=8, max_queue_delay_s=600)
    try:
        batcher.announce()
        first = batcher.submit({"x": np.ones((1, 3), np.float32)})
        batcher.withdraw()  # that request turned out malformed
        first.result(timeout=30)
        assert session.shapes == [(1, 3)]
    finally:
        batcher.close()


def test_under_load_the_next_batch_waits_until_full(
    make_batcher: MakeBatcher, session: FakeSession
) -> None:
    batcher = make_batcher(max_batch_size=2, max_queue_delay_s=600)
    _park(batcher, session)
    pair = [batcher.submit({"x": np.ones((1, 3), np.float32)}) for _ in range(2)]
    session.release.set()
    for f in pair:
        f.result(timeout=30)  # a coalesced batch: the version is under load now
    late = [batcher.submit({"x": np.ones((1, 3), np.float32)})]
    late.append(batcher.submit({"x": np.ones((1, 3), np.float32)}))
    for f in late:
        f.result(timeout=30)
    assert session.shapes[1:] == [(2, 3), (2, 3)]
