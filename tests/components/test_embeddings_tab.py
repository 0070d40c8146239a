"""The Embeddings & RAG tab built in a Blocks (no browser): ids, the session passages handlers, figures."""
from __future__ import annotations

import gradio as gr
import numpy as np
import pytest

from components.context import AppContext
from explorer.core.config import get_limits
from explorer.core.provenance import measured
from explorer.embeddings import store as store_mod


@pytest.fixture(scope="module")
def handlers():
    from components.tabs.embeddings.tab import build_embeddings_tab

    with gr.Blocks() as demo:
        prompt, model = gr.Textbox(), gr.Dropdown(["smollm2-135m-instruct"], value="smollm2-135m-instruct")
        parts = build_embeddings_tab(AppContext(prompt, model, get_limits()))
    fns = {block_fn.fn.__name__: block_fn.fn for block_fn in demo.fns.values() if block_fn.fn is not None}
    return fns, parts


@pytest.fixture
def store(tmp_path, monkeypatch):
    fresh = store_mod.VectorStore(path=str(tmp_path / "chroma"))
    monkeypatch.setattr(store_mod, "_STORE", fresh)
    return fresh


def test_ids_state_and_spec(handlers):
    from components.tabs.embeddings import SPEC

    _, parts = handlers
    assert parts["run"].elem_id == "embeddings-run" and parts["plot"].elem_id == "embeddings-main-plot"
    assert parts["result"] is parts["state"]
    assert (SPEC.key, SPEC.label, SPEC.order) == ("embeddings", "Embeddings & RAG", 65)
    assert set(SPEC.api_names) == {"embed", "search", "rag"}
    assert all(name in parts for name in SPEC.share_params)


def test_session_passages_are_added_cleared_and_deleted_at_session_end(handlers, store):
    from components.tabs.embeddings.tab import _drop_session

    fns, parts = handlers
    session, message, box = fns["add"]("Zorbland is a moon village.\n\nIts mayor is Ada Quist.", None)
    assert session.count() == 2 and "2" in message and box == ""
    other, _, _ = fns["add"]("Something else entirely.", None)
    assert other.session_id != session.session_id
    names = {c.name for c in store.client().list_collections()}
    assert {f"user-{session.session_id}-{s}" for s in store_mod.METRICS.values()} <= names
    cleared, _ = fns["clear"](other)
    assert cleared is None
    _drop_session(session)  # what gr.State's delete_callback does when the browser session ends
    assert not [c for c in store.client().list_collections() if c.name.startswith("user-")]
    with pytest.raises(gr.Error, match="over the cap"):
        fns["add"]("x" * (store_mod.MAX_PASSAGE_CHARS + 1), None)


def test_figures_from_results():
    from components.tabs.embeddings import figures as figs
    from explorer.embeddings.accuracy import AccuracyResult, summarise
    from explorer.embeddings.search import RecallResult, SearchResult

    hits = [store_mod.Hit("a", 0.9, 1), store_mod.Hit("b", 0.5, 2, source="session")]
    sides = {m: SearchResult("q", m, 2, None, hits, 1.0) for m in store_mod.METRICS}
    fig = figs.retrieval_figure(sides)
    assert len(fig.data) == 3 and list(fig.data[0].x) == [0.5, 0.9]
    recall = RecallResult([0, 8], [1, 5], np.array([[0.7, 1.0], [0.3, 0.4]]), [280, 600], 180, "cosine",
                          measured("test"))
    assert len(figs.recall_figure(recall).data) == 2
    rows = [{"question": "q", "source": "invented", "answer": "x", "answer_without_retrieval": "y",
             "correct": True, "correct_without": False}]
    acc = AccuracyResult(rows, 3, "m", summarise(rows), measured("test"))
    fig = figs.accuracy_figure(acc)
    assert [list(t.y) for t in fig.data] == [[0.0, 0.0], [1.0, 1.0]]
    assert figs.accuracy_rows(acc) == [["invented", "q", "x", "yes", "y", "no"]]
