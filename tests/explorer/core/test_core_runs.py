"""The run registry (explorer/core/runs.py): start, stream, stop, idle stop, re-attach, ownership, failure."""
import threading
import time

import pytest

from explorer.core.runs import FINISHED, RUNNING, Run, RunRegistry, new_run_id


def _counting(n, gate=None, fail_at=None):
    def work(run):
        for i in range(n):
            if gate is not None:
                gate.wait(5)
            if fail_at == i:
                raise RuntimeError("worker broke")
            yield {"step": i}
    return work


def _run(owner="alice", total=0, **kw):
    return Run(run_id=new_run_id(), owner=owner, kind="pretrain", total=total, **kw)


def test_a_run_streams_its_records_and_finishes():
    registry = RunRegistry("test")
    run = _run(total=5)
    with registry.claim(run):
        pass
    registry.start(run, _counting(5))
    registry.wait(run, 10)
    assert run.status == "done" and [r["step"] for r in run.records] == list(range(5))
    assert run.message == "Finished 5 steps." and run.status in FINISHED


def test_stop_ends_the_worker_between_records_and_reload_reattaches():
    registry = RunRegistry("test")
    gate = threading.Event()
    closed = []

    def work(run):
        try:
            for i in range(100):
                gate.wait(5)
                yield i
        finally:
            closed.append(True)

    run = _run(total=100)
    with registry.claim(run):
        pass
    registry.start(run, work)
    assert registry.active("alice") is run and registry.active("alice", kind="pretrain") is run
    assert registry.active("alice", kind="sft") is None and registry.active("bob") is None
    with pytest.raises(ValueError, match="already going"):
        with registry.claim(_run()):
            pass
    assert registry.stop("alice") is run
    gate.set()
    registry.wait(run, 10)
    assert run.status == "stopped" and run.message.startswith("Stopped after") and "of 100 steps" in run.message
    assert len(run.records) < 100 and closed == [True] and registry.active("alice") is None


def test_idle_run_stops_and_touch_keeps_it_going():
    registry = RunRegistry("test")
    run = _run(idle_seconds=0.2)

    def slow(run):
        for i in range(1000):
            time.sleep(0.05)
            yield i

    with registry.claim(run):
        pass
    registry.start(run, slow)
    for _ in range(8):  # a page following it for 0.4 s
        registry.touch(run)
        time.sleep(0.05)
    assert run.status == RUNNING
    run.thread.join(10)
    assert run.status == "stopped" and "no page polled" in run.message


def test_ownership_failure_and_eviction():
    registry = RunRegistry("test", max_per_owner=2)
    run = _run()
    with registry.claim(run):
        pass
    registry.start(run, _counting(3, fail_at=1))
    registry.wait(run, 10)
    assert run.status == "failed" and "worker broke" in run.message and len(run.records) == 1
    assert registry.get(run.run_id, "alice") is run
    with pytest.raises(ValueError, match="this session"):
        registry.get(run.run_id, "mallory")
    for _ in range(3):
        registry.register(_run(status="done"))
    assert len(registry.runs_for("alice")) == 2
    with pytest.raises(ValueError, match="claim it first"):
        registry.start(_run(), _counting(1))


def test_claim_is_undone_when_building_fails():
    registry = RunRegistry("test")
    run = _run()
    with pytest.raises(RuntimeError):
        with registry.claim(run):
            raise RuntimeError("could not build")
    assert registry.runs_for("alice") == []
