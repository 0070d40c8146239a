"""The Embeddings & RAG tab: token vectors, sentence embeddings vs hidden states, a Chroma store, RAG."""
from components import gpu_budget as g
from components.registry import TabSpec
from components.tabs.embeddings.tab import build_embeddings_tab

SPEC = TabSpec(
    key="embeddings", label="Embeddings & RAG", order=65, build=build_embeddings_tab,
    api_names=("embed", "search", "rag"),
    share_params=("question", "k", "chunk_size", "layer"),
    gpu={'follow': g.generation(per_token=0.1), 'attribute': g.generation(per_token=0.2),
         'rag': g.generation(per_token=0.1), 'pairs': g.fixed(30), 'live': g.generation(samples='n', per_token=0.05),
         'embed': g.generation(count='texts', default_tokens='max_prompt_tokens', per_token=0.005),
         'facts': g.fixed(10), 'near': g.fixed(10), 'token_map': g.fixed(10)},
)
