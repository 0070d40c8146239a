"""The Chroma vector store and search: exact against brute-force numpy, recall from the labelled files, bad
input, session isolation, rebuild of a corrupted store, no network. MiniLM only (no decoder)."""
from __future__ import annotations

import socket

import numpy as np
import pytest

from explorer.embeddings import corpus, store as store_mod
from explorer.embeddings.search import recall_by_chunk_size, search


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh store in a temporary folder, used as the process-wide one."""
    fresh = store_mod.VectorStore(path=str(tmp_path / "chroma"))
    monkeypatch.setattr(store_mod, "_STORE", fresh)
    return fresh


@pytest.mark.parametrize("metric", list(store_mod.METRICS))
def test_search_equals_brute_force_numpy(store, metric):
    col = store._guarded(lambda: store.corpus_collection(None, metric))
    got = col.get(include=["embeddings", "documents"])
    vectors, docs = np.asarray(got["embeddings"], dtype=np.float64), got["documents"]
    queries = [q["query"] for q in corpus.load_queries()[::9]]
    qv = store.embed_fn(queries)
    hits = store.query_corpus(qv, 10, metric)
    for q, per_query in zip(qv, hits):
        sims = store_mod.brute_force(vectors, q.astype(np.float64), metric)
        order = np.argsort(-sims)[:10]
        assert [h.text for h in per_query] == [docs[i] for i in order]
        np.testing.assert_allclose([h.score for h in per_query], sims[order], atol=2e-5)
        assert [h.rank for h in per_query] == list(range(1, 11))


def test_similarity_conversions():
    assert store_mod.to_similarity("cosine", 0.25) == 0.75
    assert store_mod.to_similarity("dot", -0.5) == 1.5
    assert store_mod.to_similarity("euclidean", 4.0) == -2.0


def test_recall_comes_from_the_labelled_queries(store):
    result = recall_by_chunk_size((0, 8), ks=(1, 5))
    queries = corpus.load_queries()
    qv = store.embed_fn([q["query"] for q in queries])
    for row, size in zip(result.recall, (0, 8)):
        chunks = corpus.chunk_passages(corpus.load_passages(), size or None)
        cv = store.embed_fn([c.text for c in chunks])
        top = np.argsort(-(qv @ cv.T), axis=1)
        for j, k in enumerate((1, 5)):
            expected = np.mean([any(corpus.is_relevant(chunks[i].doc, chunks[i].text, q) for i in top[n, :k])
                                for n, q in enumerate(queries)])
            assert row[j] == pytest.approx(expected)
    assert result.recall[1, 0] < result.recall[0, 0]  # 8-word chunks lose the name they are about
    assert result.n_queries == len(queries) >= 100


def test_chunking_keeps_every_word():
    passages = corpus.load_passages()
    words = " ".join(p["text"] for p in passages).split()
    for size in corpus.CHUNK_SIZES:
        chunks = corpus.chunk_passages(passages, size)
        assert " ".join(c.text for c in chunks).split() == words
        assert all(len(c.text.split()) <= size for c in chunks)


def test_adhoc_documents_are_searched_and_deleted(store):
    docs = ["The cat sat on the mat.", "Stock markets fell sharply today.", "A kitten naps on a rug."]
    result = search("a sleeping cat", 2, "cosine", docs)
    assert [h.text for h in result.hits] == [docs[0], docs[2]] or [h.text for h in result.hits] == [docs[2], docs[0]]
    assert not [c for c in store.client().list_collections() if c.name.startswith("adhoc-")]


def test_bad_input_has_clear_messages(store):
    with pytest.raises(ValueError, match="empty"):
        search("cat", 1, "cosine", [])
    with pytest.raises(ValueError, match="larger than the collection"):
        search("cat", 3, "cosine", ["one", "two"])
    with pytest.raises(ValueError, match="over the cap"):
        search("cat", 1, "cosine", ["x" * (store_mod.MAX_PASSAGE_CHARS + 1)])
    with pytest.raises(ValueError, match="Unknown metric"):
        search("cat", 1, "manhattan")
    with pytest.raises(ValueError, match="query"):
        search("   ", 1)
    session = store_mod.SessionPassages()
    with pytest.raises(ValueError, match="Too many"):
        session.add([f"passage {i}" for i in range(store_mod.MAX_USER_PASSAGES + 1)])


def test_user_passages_never_reach_another_session(store):
    alice, bob = store_mod.SessionPassages(), store_mod.SessionPassages()
    secret = "Zorbland is a moon village whose mayor is Ada Quist."
    alice.add([secret])
    query = "Who is the mayor of Zorbland?"
    assert search(query, 3, "cosine", session=alice).hits[0].text == secret
    for metric in store_mod.METRICS:
        assert secret not in [h.text for h in search(query, 50, metric, session=bob).hits]
        assert secret not in [h.text for h in search(query, 50, metric).hits]
    alice.drop()
    assert not [c for c in store.client().list_collections() if c.name.startswith("user-")]


def test_corrupted_store_is_rebuilt_with_a_notice(tmp_path, monkeypatch):
    path = tmp_path / "chroma"
    first = store_mod.VectorStore(path=str(path))
    first.build(None, ("cosine",))
    from chromadb.api.shared_system_client import SharedSystemClient

    first._client = None
    SharedSystemClient.clear_system_cache()
    (path / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    broken = store_mod.VectorStore(path=str(path))
    monkeypatch.setattr(store_mod, "_STORE", broken)
    result = search("Who founded Velmora?", 1)
    assert "Brennick" in result.hits[0].text
    assert result.notices and "rebuilt" in result.notices[0]


def test_nothing_reaches_the_network(store, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    result = search("Which festival is celebrated in Quillhaven?", 3, "dot")
    assert any("Feast of Ropes" in h.text for h in result.hits)
