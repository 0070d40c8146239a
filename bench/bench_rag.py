"""Vector store and RAG benchmark: index build time, query latency p50/p95 at the corpus size and at 100x
(synthetic unit vectors), recall@k per chunk size, RAG accuracy with vs without retrieval.

Baselines are measured in the same run: a brute-force numpy search over the same vectors (latency), and the
model's answers without retrieval (accuracy).

Run: ``python bench/bench_rag.py`` (add ``--write`` to store the accuracy in data/embeddings/rag_accuracy.json;
``--questions N`` to limit the RAG questions for a quick run).
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import shutil
import sys
import tempfile
import time

import numpy as np

from common import ROOT, percentile, report  # noqa: F401  (sets sys.path and offline env)

from explorer.embeddings import accuracy as acc  # noqa: E402
from explorer.embeddings import store as store_mod  # noqa: E402
from explorer.embeddings.corpus import CHUNK_SIZES, load_queries  # noqa: E402
from explorer.embeddings.search import recall_by_chunk_size  # noqa: E402

N_QUERIES = 50
HNSW_100X = {"ef_construction": 100, "ef_search": 100, "max_neighbors": 16}  # Chroma's defaults: approximate


def _latency(col, queries: np.ndarray, k: int) -> list[float]:
    times = []
    for q in queries:
        start = time.perf_counter()
        col.query(query_embeddings=q[None, :], n_results=k, include=["distances"])
        times.append((time.perf_counter() - start) * 1000)
    return times


def _numpy_latency(vectors: np.ndarray, queries: np.ndarray, k: int) -> list[float]:
    times = []
    for q in queries:
        start = time.perf_counter()
        sims = vectors @ q
        top = np.argpartition(-sims, k)[:k]
        top[np.argsort(-sims[top])]
        times.append((time.perf_counter() - start) * 1000)
    return times


def bench_store(k: int = 5) -> None:
    """Index build time and query latency (Chroma HNSW vs brute-force numpy) at 1x and 100x the corpus."""
    folder = tempfile.mkdtemp(prefix="bench-chroma-")
    try:
        store = store_mod.VectorStore(path=os.path.join(folder, "db"))
        chunks = store.corpus_chunks(None)
        start = time.perf_counter()
        vectors = store.embed_fn([c.text for c in chunks])
        embed_s = time.perf_counter() - start
        start = time.perf_counter()
        col = store._create("bench-1x", chunks, vectors, "cosine", {"bench": True})
        build_s = time.perf_counter() - start
        report("embed_corpus_minilm", embed_s, "s", target=f"{len(chunks)} passages")
        report("index_build_chroma_1x", build_s, "s", target=f"{len(chunks)} vectors x 384")
        queries = store.embed_fn([q["query"] for q in load_queries()[:N_QUERIES]])
        t_chroma, t_numpy = _latency(col, queries, k), _numpy_latency(vectors, queries, k)
        for q in (50, 95):
            report(f"query_latency_p{q}_1x", percentile(t_chroma, q), "ms", percentile(t_numpy, q), "numpy brute force")
        rng = np.random.default_rng(0)
        big = rng.standard_normal((len(chunks) * 100, vectors.shape[1])).astype(np.float32)
        big /= np.linalg.norm(big, axis=1, keepdims=True)
        fake = [store_mod.Chunk(f"s{i}", "synthetic", "") for i in range(len(big))]
        start = time.perf_counter()
        big_col = store._create("bench-100x", fake, big, "cosine", {"bench": True}, hnsw=HNSW_100X)
        report("index_build_chroma_100x", time.perf_counter() - start, "s",
               target=f"{len(big)} synthetic vectors, HNSW {HNSW_100X}")
        t_chroma, t_numpy = _latency(big_col, queries, k), _numpy_latency(big, queries, k)
        for q in (50, 95):
            report(f"query_latency_p{q}_100x", percentile(t_chroma, q), "ms", percentile(t_numpy, q), "numpy brute force")
        res = big_col.query(query_embeddings=queries, n_results=k, include=[])
        exact = [set(np.argsort(-(big @ q))[:k].tolist()) for q in queries]
        overlap = np.mean([len({int(i[1:]) for i in ids} & e) / k for ids, e in zip(res["ids"], exact)])
        report(f"hnsw_recall@{k}_vs_exact_100x", float(overlap), "", target="1.0 = same as brute force")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bench_recall() -> None:
    """recall@1/3/5 of the labelled queries per chunk size (the process-wide store under the cache folder)."""
    result = recall_by_chunk_size((0,) + CHUNK_SIZES)
    for i, size in enumerate(result.chunk_sizes):
        for j, k in enumerate(result.ks):
            report(f"recall@{k}_chunk_{size or 'passage'}", float(result.recall[i, j]), "",
                   target=f"{result.n_chunks[i]} chunks, {result.n_queries} queries")


def bench_accuracy(limit: int | None, write: bool, k: int = 1) -> None:
    """RAG accuracy with vs without retrieval per group; optionally stored with command, date and versions."""
    questions = acc.load_questions()
    if limit:
        questions = acc.sample_questions(max(1, limit // 3))
    start = time.perf_counter()
    result = acc.evaluate(questions, None, k, progress=lambda i, n, q: print(f"  [{i + 1}/{n}] {q}", file=sys.stderr))
    for group, row in result.accuracy.items():
        report(f"rag_accuracy_{group}", row["with"], "", row["without"], "without retrieval", target=f"n={row['n']}")
    if write:
        versions = {name: importlib.metadata.version(name) for name in
                    ("torch", "transformers", "sentence-transformers", "chromadb", "scikit-learn")}
        path = acc.write_stored(result, {
            "command": "python bench/bench_rag.py --write" + (f" --questions {limit}" if limit else ""),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "when": time.time(),
            "versions": versions, "python": platform.python_version(), "machine": platform.machine(),
            "settings": {"k": k, "metric": "cosine", "chunk_size": "passages as written", "decoding": "greedy",
                         "max_new_tokens": 24}, "elapsed_s": round(time.perf_counter() - start, 1)})
        print(f"wrote {path}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="store the RAG accuracy in data/embeddings/")
    parser.add_argument("--questions", type=int, default=None, help="limit the RAG questions (sample)")
    parser.add_argument("--skip-rag", action="store_true", help="only the vector store figures")
    parser.add_argument("--skip-store", action="store_true", help="only the RAG accuracy")
    args = parser.parse_args()
    if not args.skip_store:
        bench_store()
        bench_recall()
    if not args.skip_rag:
        bench_accuracy(args.questions, args.write)


if __name__ == "__main__":
    main()
