"""Token embeddings and sentence vectors against independent references: tied storage, cosine neighbours by
torch, PCA by numpy SVD, MiniLM similarities by sentence-transformers, hidden states by transformers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.embeddings import sentence, token_embeddings as te


def test_tied_weights_true_for_smollm2(smollm2):
    facts = te.embedding_facts(smollm2)
    assert facts.tied and facts.config_tied
    assert smollm2.model.lm_head.weight.data_ptr() == smollm2.model.model.embed_tokens.weight.data_ptr()
    assert (facts.vocab_size, facts.hidden_size) == (49_152, 576)
    assert facts.embedding_params == 49_152 * 576
    unique = {p.data_ptr(): p.numel() for p in smollm2.model.parameters()}
    assert facts.total_params == sum(unique.values())
    assert facts.share == pytest.approx(49_152 * 576 / facts.total_params)
    assert 0.2 < facts.share < 0.22


def test_equal_values_are_not_tying(tiny_engine):
    from transformers import LlamaForCausalLM

    from explorer.core.engine import Engine
    from models.loading import LoadedModel

    config = tiny_engine.config.__class__(**{**tiny_engine.config.to_dict(), "tie_word_embeddings": False})
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.copy_(model.model.embed_tokens.weight)  # equal values, separate storage
    engine = Engine(LoadedModel(spec=tiny_engine.spec, model=model, tokenizer=tiny_engine.tokenizer,
                                device=torch.device("cpu"), dtype=torch.float32))
    facts = te.embedding_facts(engine)
    assert not facts.tied and facts.output_params == model.lm_head.weight.numel()
    assert te.embedding_facts(tiny_engine).tied


def test_nearest_tokens_by_torch_cosine(smollm2):
    result = te.nearest_tokens(smollm2, " king", 8)
    weights = smollm2.model.get_input_embeddings().weight.detach().float()
    cos = torch.nn.functional.cosine_similarity(weights, weights[result.token_id][None, :], dim=1)
    cos[result.token_id] = -2
    top = torch.topk(cos, 8)
    assert [i for _, i, _ in result.neighbours] == top.indices.tolist()
    np.testing.assert_allclose([c for _, _, c in result.neighbours], top.values.numpy(), atol=1e-5)
    assert " queen" in [t for t, _, _ in result.neighbours]


def test_token_map_is_pca_by_svd(smollm2):
    result = te.token_map(smollm2, ["king", "queen", "man", "woman", "Paris", "London"])
    assert result.tokens == [" king", " queen", " man", " woman", " Paris", " London"] and not result.notices
    x = te.normalised_embeddings(smollm2)[result.ids].astype(np.float64)
    x = x - x.mean(axis=0)
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    expected = x @ vt[:2].T
    np.testing.assert_allclose(np.abs(result.coords), np.abs(expected), atol=1e-4)  # PCA signs are arbitrary
    np.testing.assert_allclose(result.explained, (s[:2] ** 2) / (s ** 2).sum(), atol=1e-5)
    with pytest.raises(ValueError, match="at least 3"):
        te.token_map(smollm2, ["king", "king"])


def test_minilm_similarities_equal_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    from models.registry import minilm_path

    texts = ["A cat sleeps on the sofa.", "A kitten naps on the couch.", "Stock markets fell today."]
    result = sentence.embed_texts(texts, "all-minilm-l6-v2")
    reference = SentenceTransformer(str(minilm_path()), device="cpu")
    expected = reference.similarity(reference.encode(texts), reference.encode(texts)).numpy()
    assert result.vectors.shape == (3, 384) and result.to_api()["vectors_dim"] == 384
    np.testing.assert_allclose(result.similarity, expected, atol=1e-5)
    assert result.similarity[0, 1] > result.similarity[0, 2]


def test_decoder_vectors_equal_transformers_hidden_states(smollm2):
    texts = ["The cat sleeps.", "Paris is the capital of France."]
    for pooling in ("mean", "last"):
        result = sentence.embed_texts(texts, "smollm2-135m-instruct", layer=7, pooling=pooling)
        vecs = []
        for t in texts:
            ids = smollm2.tokenizer(t, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                h = smollm2.model(ids, output_hidden_states=True).hidden_states[7][0].float()
            vecs.append((h.mean(0) if pooling == "mean" else h[-1]).numpy())
        vecs = np.stack(vecs)
        np.testing.assert_allclose(result.vectors, vecs, rtol=1e-4, atol=1e-4)
        n = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
        np.testing.assert_allclose(result.similarity, n @ n.T, atol=1e-5)
    with pytest.raises(ValueError, match="layer"):
        sentence.embed_texts(texts, "smollm2-135m-instruct", layer=31)
    with pytest.raises(ValueError, match="pooling"):
        sentence.embed_texts(texts, "smollm2-135m-instruct", pooling="max")
    with pytest.raises(ValueError, match="empty"):
        sentence.embed_texts([], "all-minilm-l6-v2")


def test_pairs_auroc_from_the_labelled_file(smollm2):
    from sklearn.metrics import roc_auc_score

    from explorer.embeddings.corpus import load_pairs

    pairs = load_pairs()
    assert len(pairs) >= 100
    result = sentence.compare_pairs("smollm2-135m-instruct")
    labels = [p[0] for p in pairs]
    keep = [i for i, lab in enumerate(labels) if lab != "related"]
    y = [labels[i] == "paraphrase" for i in keep]
    assert result.auroc["minilm"][0] == pytest.approx(roc_auc_score(y, result.minilm[keep]))
    assert result.auroc["mean"][10] == pytest.approx(roc_auc_score(y, result.mean[10][keep]))
    value, low, high = result.interval("minilm", 0)
    assert low <= value <= high and value > 0.95  # the dedicated embedding model separates them
    assert result.auroc["minilm"][0] > result.auroc["last"].max()  # and beats the last-token hidden state
