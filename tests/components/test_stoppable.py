"""Stop really stops: closing the consuming generator ends the worker at its next step."""
import threading
import time

import pytest

from components.stoppable import iterate_in_thread


def test_items_and_heartbeats_then_stop():
    steps = []

    def produce(flag):
        i = 0
        while True:
            flag.check()
            steps.append(i)
            time.sleep(0.01)
            if i % 20 == 0:
                yield i
            i += 1

    gen = iterate_in_thread(produce, heartbeat_s=0.05)
    got = [x for x in (next(gen) for _ in range(5)) if x is not None]
    gen.close()
    time.sleep(0.3)
    count = len(steps)
    time.sleep(0.3)
    assert got and got[0] == 0
    assert len(steps) == count, "the worker kept running after the consumer closed"
    assert not any(t.name == "stoppable-task" and t.is_alive() for t in threading.enumerate())


def test_worker_errors_reach_the_consumer():
    def produce(flag):
        yield 1
        raise ValueError("bad input")

    gen = iterate_in_thread(produce, heartbeat_s=0.05)
    with pytest.raises(ValueError, match="bad input"):
        list(gen)



def test_the_worker_sees_the_request_context_so_progress_and_warnings_reach_the_page():
    """gr.Progress / gr.Warning find their event through Gradio's context variables; a bare thread loses them."""
    from gradio.context import LocalContext

    token = LocalContext.event_id.set("event-123")
    try:
        seen = []

        def produce(flag):
            seen.append(LocalContext.event_id.get(None))
            yield 1

        assert [x for x in iterate_in_thread(produce) if x is not None] == [1]
    finally:
        LocalContext.event_id.reset(token)
    assert seen == ["event-123"]


def test_drive_reports_progress_draws_partials_and_returns_the_result():
    from components.stoppable import drive
    from explorer.core.progress import Progress

    def produce(flag):
        yield Progress(0.5, "half", partial="p")
        yield Progress(0.9, "almost")
        yield "result"

    seen = []
    gen = drive(produce, lambda f, desc: seen.append((f, desc)), "beat", on_partial=lambda p: f"drawn {p}")
    out = []
    try:
        while True:
            out.append(next(gen))
    except StopIteration as stop:
        result = stop.value
    assert result == "result" and seen == [(0.5, "half"), (0.9, "almost")]
    assert [o for o in out if o != "beat"] == ["drawn p"] and out.count("beat") >= 1
