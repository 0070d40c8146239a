"""Embeddings & RAG lens: token embeddings, sentence embeddings vs hidden states, a Chroma vector store, RAG.

Where a change goes: token_embeddings.py: embedding share, weight tying, nearest tokens, PCA map;
sentence.py: MiniLM vs decoder hidden states, /embed, AUROC with bootstrap; corpus.py: the labelled files and
chunking; store.py: the Chroma store (collections per metric, session passages, rebuilds); search.py: /search and
recall@k per chunk size; rag.py: /rag prompt, answers, context attribution; accuracy.py: accuracy with vs without
retrieval (stored bench file and live sample).

Lens contract: ``iter_run`` / ``run`` / ``to_api`` are the /rag endpoint (:func:`answer_question`); the others are
exported by name (``search``, ``embed_texts``, ``compare_pairs``, ``nearest_tokens``, ``evaluate`` ...), and every
result serialises with its own ``to_api()``.
"""
from explorer.embeddings.accuracy import AccuracyResult, evaluate, load_stored, sample_questions  # noqa: F401
from explorer.embeddings.rag import RagResult, answer_question, attribute_context  # noqa: F401
from explorer.embeddings.search import RecallResult, SearchResult, recall_by_chunk_size, search, search_all_metrics  # noqa: F401
from explorer.embeddings.sentence import EmbedResult, PairsResult, compare_pairs, embed_texts  # noqa: F401
from explorer.embeddings.store import METRICS, SessionPassages, VectorStore, get_store  # noqa: F401
from explorer.embeddings.token_embeddings import embedding_facts, nearest_tokens, token_map  # noqa: F401

run = answer_question


def iter_run(question: str, model: str | None = None, k: int = 3):
    """Generator form of :func:`run` (one item: the :class:`RagResult`), for handlers that stream."""
    yield answer_question(question, model, k)


from explorer.core.progress import to_api  # noqa: F401 (the lens serialiser: result.to_api(**view))
