"""The Embeddings & RAG tab: token vectors, sentence embeddings vs hidden states, a Chroma store, RAG."""
from components.registry import TabSpec
from components.tabs.embeddings.tab import build_embeddings_tab

SPEC = TabSpec(
    key="embeddings", label="Embeddings & RAG", order=65, build=build_embeddings_tab,
    api_names=("embed", "search", "rag"),
    share_params=("question", "k", "chunk_size", "layer"),
    gpu_seconds=lambda limits: 120,
)
