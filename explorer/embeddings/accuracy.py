"""RAG accuracy on the labelled questions, with and without retrieval: measured by ``bench/bench_rag.py`` and
stored in ``data/embeddings/rag_accuracy.json`` (with command, date and versions), recomputable live on a sample.

Groups: ``invented`` (facts only the corpus knows), ``real`` (common knowledge), ``unanswerable`` (correct =
the model says it does not know).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from explorer.core.config import data_path
from explorer.core.provenance import Provenance, measured, stored
from explorer.embeddings.corpus import load_questions
from explorer.embeddings.rag import answer_question, is_correct

GROUPS = ("invented", "real", "unanswerable")
STORED_FILE = ("embeddings", "rag_accuracy.json")
BENCH_COMMAND = "python bench/bench_rag.py --write"


@dataclass(frozen=True)
class AccuracyResult:
    """Accuracy with and without retrieval.

    Attributes:
        rows: list of ``{"question", "source", "answer", "answer_without_retrieval", "correct", "correct_without"}``;
        k: passages retrieved; model; accuracy: ``{group or "all": {"with": share, "without": share, "n": count}}``;
        provenance.
    """

    rows: list
    k: int
    model: str
    accuracy: dict
    provenance: Provenance

    def to_api(self) -> dict:
        """``{"k", "model", "accuracy", "rows", "provenance"}``."""
        return {"k": self.k, "model": self.model, "accuracy": self.accuracy, "rows": self.rows,
                "provenance": self.provenance.to_api()}


def summarise(rows: list[dict]) -> dict:
    """``{group: {"with", "without", "n"}}`` plus ``"all"`` from per-question rows."""
    out = {}
    for group in GROUPS + ("all",):
        sel = [r for r in rows if group == "all" or r["source"] == group]
        if sel:
            out[group] = {"with": sum(r["correct"] for r in sel) / len(sel),
                          "without": sum(r["correct_without"] for r in sel) / len(sel), "n": len(sel)}
    return out


def sample_questions(n_per_group: int = 2) -> list[dict]:
    """The first ``n_per_group`` questions of each group (a fixed, reproducible sample)."""
    questions = load_questions()
    return [q for g in GROUPS for q in [q for q in questions if q["source"] == g][:n_per_group]]


def evaluate(questions: list[dict] | None = None, model: str | None = None, k: int = 1, progress=None,
             should_stop=None) -> AccuracyResult:
    """Answer every question with and without retrieval and score both (:func:`explorer.embeddings.rag.is_correct`).

    ``progress(i, n, label)`` is called before each question; ``should_stop()`` returning True ends the run early
    (the rows so far are scored).
    """
    questions = load_questions() if questions is None else questions
    rows, name = [], model
    for i, q in enumerate(questions):
        if should_stop and should_stop():
            break
        if progress:
            progress(i, len(questions), q["question"])
        r = answer_question(q["question"], model, k)
        name = r.model
        rows.append({"question": q["question"], "source": q["source"], "answer": r.answer,
                     "answer_without_retrieval": r.answer_without_retrieval,
                     "correct": is_correct(r.answer, q), "correct_without": is_correct(r.answer_without_retrieval, q)})
    return AccuracyResult(rows, k, name or "", summarise(rows),
                          measured("questions.json: answer_question with and without retrieval", name or ""))


def load_stored(path: str | None = None) -> AccuracyResult | None:
    """The stored bench result, or ``None`` when the file does not exist yet."""
    path = path or data_path(*STORED_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    return AccuracyResult(data["rows"], data["k"], data["model"], data["accuracy"],
                          stored(os.path.relpath(path, data_path("..")), data.get("command", BENCH_COMMAND),
                                 data.get("when"), data["model"]))


def write_stored(result: AccuracyResult, meta: dict, path: str | None = None) -> str:
    """Write ``result`` with ``meta`` (command, date, versions, settings) as the stored bench file; returns the path."""
    path = path or data_path(*STORED_FILE)
    payload = {**meta, "k": result.k, "model": result.model, "accuracy": result.accuracy, "rows": result.rows}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1, ensure_ascii=False)
        handle.write("\n")
    return path
