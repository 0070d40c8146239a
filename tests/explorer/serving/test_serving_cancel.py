"""A client that goes away frees its place in the line, its share of a batch and its wait on an identical request.

The app's check (components/serving.client_gone) reads Gradio's queue; here a check registered the same way
says "gone" for the threads the test marks, so each mechanism is tested on its own, with real threads.
"""
import threading
import time

import pytest

from explorer.core import turns
from explorer.serving import batching
from explorer.serving.cache import ResultCache


@pytest.fixture
def gone():
    """A set of thread ids whose client has gone; registered as a cancel check for the test's duration."""
    marked: set[int] = set()

    def check() -> bool:
        return threading.get_ident() in marked

    turns.CANCEL_CHECKS.append(check)
    try:
        yield marked
    finally:
        turns.CANCEL_CHECKS.remove(check)


def _run(target, outcome: dict, key: str):
    def body():
        outcome[key + "_tid"] = threading.get_ident()
        try:
            outcome[key] = target()
        except Exception as exc:  # noqa: BLE001 - the test reads it
            outcome[key] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def _until(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_waiter_in_line_leaves_when_its_client_goes(gone):
    lock = turns.TurnLock(name="cancel-test")
    lock.acquire()
    outcome = {}
    thread = _run(lambda: lock.acquire(timeout=60), outcome, "a")
    _until(lambda: lock.waiting == 1)
    gone.add(outcome["a_tid"])
    thread.join(5)
    assert not thread.is_alive()
    assert isinstance(outcome["a"], turns.Cancelled)
    assert lock.waiting == 0  # its place is freed
    lock.release()
    assert lock.acquire(blocking=False)  # nobody else holds or waits
    lock.release()


def test_gone_client_stops_before_its_next_turn(gone):
    lock = turns.TurnLock(name="cancel-test-2")
    gone.add(threading.get_ident())
    with pytest.raises(turns.Cancelled):
        lock.acquire()
    assert lock.acquire(cancellable=False)  # the batching loop's turns are never cancelled
    lock.release()


def test_coalesced_waiter_leaves_and_leader_still_serves_the_others(gone):
    cache = ResultCache(max_bytes=1 << 20)
    release, calls = threading.Event(), []

    def compute():
        calls.append(1)
        release.wait(30)
        return 42

    outcome = {}
    leader = _run(lambda: cache.call("k", compute), outcome, "leader")
    _until(lambda: calls)
    waiter = _run(lambda: cache.call("k", compute), outcome, "waiter")
    stays = _run(lambda: cache.call("k", compute), outcome, "stays")
    _until(lambda: cache.coalesced == 2)
    gone.add(outcome["waiter_tid"])
    waiter.join(5)
    assert isinstance(outcome["waiter"], turns.Cancelled)
    release.set()
    leader.join(10), stays.join(10)
    assert outcome["leader"][0] == 42 and outcome["stays"] == (42, outcome["stays"][1])
    assert outcome["stays"][1].how == "coalesced" and len(calls) == 1


def test_cancelled_leader_hands_the_work_to_a_waiter(gone):
    cache = ResultCache(max_bytes=1 << 20)
    started, calls = threading.Event(), []

    def compute():
        calls.append(threading.get_ident())
        started.set()
        _until(lambda: cache.coalesced == 1)
        turns.raise_if_cancelled()  # what the leader's next model turn does
        return 7

    outcome = {}
    leader = _run(lambda: (gone.add(threading.get_ident()), cache.call("k", compute))[1], outcome, "leader")
    started.wait(30)
    waiter = _run(lambda: cache.call("k", compute), outcome, "waiter")
    leader.join(10), waiter.join(30)
    assert isinstance(outcome["leader"], turns.Cancelled)
    assert outcome["waiter"][0] == 7 and outcome["waiter"][1].how == "computed"  # not the leader's cancellation
    assert len(calls) == 2 and len(cache) == 1


def test_gone_client_frees_its_share_of_the_batch(gone, tiny_engine):
    engine = tiny_engine
    batcher = batching.batcher_for(engine)
    ids_a, ids_b = engine.encode("A client who leaves."), engine.encode("A client who stays to the end.")
    expected_b = [step.token for step in engine.steps(ids_b, 6)]
    outcome = {}
    try:
        batcher.generate([ids_b], 1)  # the manager is running before the model is held
        engine.lock.acquire()  # hold the model: both requests sit in the batch engine
        try:
            a = _run(lambda: batcher.generate([ids_a], 40, timeout_s=60), outcome, "a")
            b = _run(lambda: batcher.generate([ids_b], 6, timeout_s=60), outcome, "b")
            _until(lambda: batcher.queued == 2)
            gone.add(outcome["a_tid"])
            a.join(5)
            assert isinstance(outcome["a"], turns.Cancelled)
            assert batcher.queued == 1  # only the client who stayed is waited for
        finally:
            engine.lock.release()
        b.join(60)
        assert outcome["b"] == [expected_b]
        scheduler = batcher._manager.batch_processor.scheduler
        _until(lambda: not scheduler.has_pending_requests())  # the leaver's slot and blocks were freed
    finally:
        batcher.stop()
