"""Fair turns: interactive steps before training steps, training at least one turn in three, a wait cap."""
import threading
import time

import pytest

from explorer.core import turns
from explorer.core.turns import ModelBusy, TurnLock


def _queue_up(lock, kinds, order, hold_s=0.0):
    """Start one thread per kind that waits for a turn and logs its kind when it gets it."""
    threads = []
    for i, kind in enumerate(kinds):
        def work(kind=kind, i=i):
            with lock.turn(kind):
                order.append((kind, i))
                time.sleep(hold_s if kind == "interactive" else 0.0)
        t = threading.Thread(target=work)
        t.start()
        threads.append(t)
        deadline = time.time() + 5
        while lock.waiting < len(threads) and time.time() < deadline:  # keep arrival order deterministic
            time.sleep(0.005)
    return threads


def test_interactive_goes_before_waiting_training_but_training_gets_one_in_three():
    lock = TurnLock(name="test")
    order = []
    with lock.turn("training"):  # a training step runs; others arrive meanwhile
        threads = _queue_up(lock, ["training", "interactive", "interactive", "interactive", "interactive",
                                   "training"], order, hold_s=0.05)
        lock._started = time.monotonic()  # count this step as short (queueing the others is not its work)
    for t in threads:
        t.join(10)
    kinds = [k for k, _ in order]
    assert kinds[0] == "interactive"  # the user who arrived after the training step goes first
    assert kinds == ["interactive", "interactive", "training", "interactive", "interactive", "training"]
    assert lock.granted == {"interactive": 4, "training": 3}


def test_a_long_training_step_does_not_take_two_thirds_of_the_time():
    """Training is owed its turn only after interactive work used twice the last training step's time."""
    lock = TurnLock(name="test")
    order = []
    with lock.turn("training"):
        time.sleep(0.3)  # a long optimiser step
        threads = _queue_up(lock, ["training"] + ["interactive"] * 4, order, hold_s=0.25)
    for t in threads:
        t.join(10)
    kinds = [k for k, _ in order]
    # two short interactive turns (0.5 s) are not yet twice the 0.3+ s step: a third runs before training
    assert kinds[:3] == ["interactive"] * 3 and "training" in kinds


def test_reentrant_and_wait_cap():
    lock = TurnLock(name="test")
    with lock.turn("interactive"):
        with lock:  # same thread: re-entrant
            pass
        errors = []

        def impatient():
            try:
                lock.acquire(timeout=0.3)
            except ModelBusy as exc:
                errors.append(str(exc))

        t = threading.Thread(target=impatient)
        t.start()
        t.join(5)
    assert errors and "busy" in errors[0] and "0 s cap" in errors[0]
    assert lock.waiting == 0 and not lock.busy


def test_training_run_yields_to_an_interactive_request(tiny_engine):
    """A training loop (one optimiser-sized step per turn) and a user's forward pass arriving mid-run: the user's
    pass runs at the next turn boundary, before the training loop's next step."""
    engine = tiny_engine
    log, stop = [], threading.Event()
    notices = []
    turns.WAIT_LISTENERS.append(lambda model, ahead, eta: notices.append((model, ahead, eta)))

    def train():
        for step in range(40):
            if stop.is_set():
                return
            with engine.session(grad=True):
                log.append(("train", step))
                time.sleep(0.05)

    trainer = threading.Thread(target=train)
    trainer.start()
    while len(log) < 3:
        time.sleep(0.01)
    ids = engine.as_input(engine.encode("The capital of France is"))
    log.append(("ask", None))
    with engine.session():
        log.append(("user", None))
        out = engine.model(input_ids=ids)
    stop.set()
    trainer.join(10)
    turns.WAIT_LISTENERS.clear()
    asked, served = log.index(("ask", None)), log.index(("user", None))
    # between asking and running, only the step already running (or granted at that instant) went first
    assert sum(1 for kind, _ in log[asked:served] if kind == "train") <= 2, log
    assert sum(1 for kind, _ in log[served:] if kind == "train") >= 1  # and training went on afterwards
    assert out.logits.shape[-1] == engine.model.config.vocab_size
