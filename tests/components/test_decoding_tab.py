"""Decoding tab handler: progress per token and the run-time cap with a notice (issue 13, item 3)."""
from __future__ import annotations

import dataclasses
import functools
import itertools

import pytest

from components.tabs.decoding import tab as decoding_tab
from explorer import decoding
from explorer.core.config import get_limits

ROWS = [["greedy"] + [""] * len(decoding_tab.PARAMS), ["greedy"] + [""] * len(decoding_tab.PARAMS)]


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, fraction, desc=None):
        self.calls.append((fraction, desc))


def _use_tiny(monkeypatch, tiny_engine, cap: float):
    monkeypatch.setattr(decoding, "iter_runs", functools.partial(decoding.iter_runs, engine=tiny_engine))
    monkeypatch.setattr(decoding_tab, "get_limits", lambda: dataclasses.replace(get_limits(), max_run_seconds=cap))


def test_progress_per_token_and_column(tiny_engine, monkeypatch):
    _use_tiny(monkeypatch, tiny_engine, cap=600.0)
    progress = Recorder()
    outputs = [o for o in decoding_tab._run("Hello", None, ROWS, 3, 0.7, progress=progress)
               if not isinstance(o[0], dict)]
    result = outputs[-1][0]
    steps = sum(len(run.token_ids) for run in result.runs)
    assert len(progress.calls) >= steps and steps >= 2
    fractions = [f for f, _ in progress.calls]
    assert fractions == sorted(fractions) and 0 < fractions[0] and fractions[-1] == pytest.approx(1.0)
    assert any("column 2/2" in desc for _, desc in progress.calls)


def test_the_run_time_cap_cuts_the_run_with_a_notice(tiny_engine, monkeypatch):
    _use_tiny(monkeypatch, tiny_engine, cap=3.5)
    clock = itertools.count()  # one "second" per token: column 1 (3 tokens) fits, column 2 passes the cap
    monkeypatch.setattr(decoding_tab, "_clock", lambda: float(next(clock)))
    monkeypatch.setattr(decoding, "iter_runs", functools.partial(decoding.iter_runs, engine=tiny_engine))
    with pytest.warns(UserWarning, match="(?i)cut short"):
        outputs = [o for o in decoding_tab._run("Hello", None, ROWS, 3, 0.7, progress=Recorder())
                   if not isinstance(o[0], dict)]
    result = outputs[-1][0]
    assert len(result.runs) == 1 and len(result.runs[0].token_ids) == 3
    assert any("cut short" in n.lower() and "3.5 s" in n for n in result.notices)
