"""Time caps in the probe run say what they cut: skipped probes and a cut answer (issue 13, item 3)."""
from __future__ import annotations

import dataclasses

from components.tabs.hallucination.tab import summary_markdown
from explorer import hallucination as H
from explorer.core.config import get_limits
from explorer.hallucination import probes as probes_module

NAMES = ["token_confidence", "sequence", "p_true"]


def _tight(monkeypatch, **caps):
    limits = dataclasses.replace(get_limits(), **caps)
    monkeypatch.setattr(probes_module, "get_limits", lambda: limits)
    return limits


def test_probes_skipped_by_the_run_cap_are_in_the_last_snapshot(tiny_engine, monkeypatch):
    _tight(monkeypatch, max_run_seconds=0.0)
    snapshots = list(H.iter_run("What is the capital of France?", probes=NAMES, engine=tiny_engine))
    last = snapshots[-1]
    assert list(last.probes) == NAMES
    assert all("skipped" in last.probes[name] for name in NAMES)
    assert any("skipped" in notice.lower() and "p_true" in notice for notice in last.notices)
    summary = summary_markdown(last)
    for name in NAMES:
        assert f"**{H.PROBES[name].label}**: the run passed its time cap" in summary
    assert last.to_api()["probes"] == last.probes and H.run("What is the capital of France?", probes=NAMES,
                                                              engine=tiny_engine).probes == last.probes


def test_an_answer_cut_by_the_time_cap_says_so(smollm2, monkeypatch):
    _tight(monkeypatch, max_probe_seconds=1e-9)
    result = H.run("Tell me a long story about a dragon.", probes=["sequence"], engine=smollm2)
    assert result.answer.stopped_by_time
    assert result.to_api()["answer_cut_short"] is True
    assert any("cut short" in notice for notice in result.notices)
    assert "cut short" in summary_markdown(result).splitlines()[0]
