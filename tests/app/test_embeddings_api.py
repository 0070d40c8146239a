"""The /embed, /search and /rag JSON APIs through gradio_client on the app launched in-process."""
from __future__ import annotations

import numpy as np
import pytest


def test_embed_api_minilm_and_decoder(client):
    texts = ["A cat sleeps on the sofa.", "A kitten naps on the couch.", "Stock markets fell today."]
    out = client.predict(texts, "all-minilm-l6-v2", None, "mean", api_name="/embed")
    sim = np.array(out["similarity"])
    assert out["vectors_dim"] == 384 and sim.shape == (3, 3)
    np.testing.assert_allclose(np.diag(sim), 1.0, atol=1e-5)
    assert sim[0, 1] > sim[0, 2]
    dec = client.predict(texts, "smollm2-135m-instruct", 12, "last", api_name="/embed")
    assert dec["vectors_dim"] == 576 and dec["layer"] == 12


def test_search_api_corpus_and_documents(client):
    out = client.predict("Who founded Velmora?", 3, "cosine", None, None, api_name="/search")
    hits = out["hits"]
    assert [h["rank"] for h in hits] == [1, 2, 3] and "Brennick" in hits[0]["text"]
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    eu = client.predict("Who founded Velmora?", 3, "euclidean", None, None, api_name="/search")["hits"]
    assert [h["text"] for h in eu] == [h["text"] for h in hits]  # unit vectors: same order, score = -sqrt(2 - 2cos)
    np.testing.assert_allclose([h["score"] for h in eu], [-np.sqrt(2 - 2 * h["score"]) for h in hits], atol=1e-4)
    docs = ["Bananas are yellow.", "The violin has four strings.", "Cars need fuel."]
    adhoc = client.predict("How many strings does a violin have?", 1, "dot", docs, None, api_name="/search")
    assert adhoc["hits"][0]["text"] == docs[1]


def test_search_api_bad_input(client):
    with pytest.raises(Exception, match="empty"):
        client.predict("cat", 1, "cosine", [], None, api_name="/search")
    with pytest.raises(Exception, match="larger than the collection"):
        client.predict("cat", 5, "cosine", ["one", "two"], None, api_name="/search")
    with pytest.raises(Exception, match="over the cap"):
        client.predict("cat", 1, "cosine", ["x" * 5000], None, api_name="/search")
    with pytest.raises(Exception, match="Unknown metric"):
        client.predict("cat", 1, "hamming", None, None, api_name="/search")


def test_rag_api(client):
    out = client.predict("Who founded Velmora?", "smollm2-135m-instruct", 1, api_name="/rag")
    assert "brennick" in out["answer"].lower()
    assert isinstance(out["answer_without_retrieval"], str)
    assert len(out["passages"]) == 1 and set(out["passages"][0]) == {"text", "score", "rank"}
    with pytest.raises(Exception, match="encoder"):
        client.predict("Who founded Velmora?", "all-minilm-l6-v2", 2, api_name="/rag")
