"""RAG: grounded answers on the real model, scoring from the labelled questions, the stored bench file."""
from __future__ import annotations

import numpy as np
import pytest

from explorer.embeddings import accuracy as acc, rag
from explorer.embeddings.corpus import load_questions


def test_scoring_rules():
    q = {"answers": ["Brennick"], "answerable": True}
    assert rag.is_correct("Orla Brennick founded it.", q)
    assert not rag.is_correct("I don't know.", q)
    assert not rag.is_correct("Velmora was founded by Marga Teyn.", q)
    unanswerable = {"answers": [], "answerable": False}
    assert rag.is_correct("I don’t know.", unanswerable) and not rag.is_correct("Ada Quist.", unanswerable)


def test_labelled_questions_cover_every_group():
    questions = load_questions()
    groups = {g: [q for q in questions if q["source"] == g] for g in acc.GROUPS}
    assert all(len(v) >= 10 for v in groups.values())
    assert all(not q["answerable"] and not q["answers"] for q in groups["unanswerable"])


def test_prompt_holds_the_passages_in_rank_order():
    text = rag.rag_prompt("Who?", ["first passage", "second passage"])
    assert text.index("[1] first passage") < text.index("[2] second passage") < text.index("Question: Who?")


def test_retrieval_grounds_an_invented_fact(smollm2):
    result = rag.answer_question("Who founded Velmora?", "smollm2-135m-instruct", 1)
    assert "Brennick" in result.passages[0].text and result.passages[0].rank == 1
    assert "brennick" in result.answer.lower()
    assert "brennick" not in result.answer_without_retrieval.lower()  # invented: unknowable without retrieval
    api = result.to_api()
    assert {"answer", "answer_without_retrieval", "passages"} <= set(api)
    assert set(api["passages"][0]) == {"text", "score", "rank"}


def test_attribution_points_at_the_passage_with_the_answer(smollm2):
    import dataclasses

    result = rag.answer_question("Who founded Velmora?", "smollm2-135m-instruct", 2, with_bare=False)
    assert "Orla Brennick" in result.passages[0].text and "Orla Brennick" not in result.passages[1].text
    # Attribute a fixed answer (the model's own may come from the wrong passage): blanking passage [1] must hurt most.
    attr = rag.attribute_context(dataclasses.replace(result, answer="Orla Brennick"))
    assert len(attr.passage_scores) == 2 and attr.scores.shape == (len(attr.segments),)
    assert int(np.argmax(attr.passage_scores)) == 0 and attr.passage_scores[0] > 0
    in_first = "".join(seg for seg, p in zip(attr.segments, attr.passage_of) if p == 1)
    assert "Orla Brennick" in in_first and "[2]" not in in_first


def test_accuracy_is_scored_from_the_labelled_file(smollm2):
    questions = acc.sample_questions(1)
    result = acc.evaluate(questions, "smollm2-135m-instruct", 1)
    assert [r["question"] for r in result.rows] == [q["question"] for q in questions]
    for row, q in zip(result.rows, questions):
        assert row["correct"] == rag.is_correct(row["answer"], q)
        assert row["correct_without"] == rag.is_correct(row["answer_without_retrieval"], q)
    assert result.accuracy["all"]["with"] == pytest.approx(np.mean([r["correct"] for r in result.rows]))


def test_stored_bench_file_matches_its_rows():
    stored = acc.load_stored()
    if stored is None:
        pytest.skip("data/embeddings/rag_accuracy.json not written yet (python bench/bench_rag.py --write)")
    assert stored.provenance.kind == "stored" and "bench_rag.py" in stored.provenance.source
    expected = acc.summarise(stored.rows)
    assert set(stored.accuracy) == set(expected)
    for group, row in expected.items():
        assert stored.accuracy[group] == pytest.approx(row)
    by_question = {q["question"]: q for q in load_questions()}
    for row in stored.rows:
        assert row["correct"] == rag.is_correct(row["answer"], by_question[row["question"]])
