"""Benchmark scoring by log-likelihood against a direct forward pass per option; contamination on a tiny model."""
import math

import numpy as np
import pytest
import torch

from explorer.core.progress import run_to_end
from explorer.prompting import benchmark, contamination, tasks


def direct_loglik(engine, context, continuation):
    """log P(continuation | context) from one unpadded forward of context + continuation (the reference)."""
    ids = torch.tensor([list(context) + list(continuation)])
    with torch.no_grad():
        logits = engine.model(input_ids=ids).logits[0].float()
    logp = torch.log_softmax(logits, -1)
    return sum(float(logp[len(context) - 1 + j, tok]) for j, tok in enumerate(continuation))


@pytest.mark.parametrize("chat", [False, True])
def test_padded_option_scoring_equals_a_forward_per_option(tiny_engine, chat):
    item = tasks.items("capitals")[0]
    context, text = benchmark.context_ids(tiny_engine, item.question, "capitals", chat)
    conts = [benchmark.continuation_ids(tiny_engine, text, context, o, chat) for o in item.options]
    got = benchmark.option_logliks(tiny_engine, context, conts)
    want = [direct_loglik(tiny_engine, context, c) for c in conts]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_continuations_split_like_the_harness(tiny_engine):
    context, text = benchmark.context_ids(tiny_engine, "What is the capital of Peru?", "capitals", False)
    cont = benchmark.continuation_ids(tiny_engine, text, context, "Lima", False)
    assert tiny_engine.encode(text + " Lima") == context + cont
    assert tiny_engine.tokenizer.decode(cont) == " Lima"


def test_acc_and_acc_norm_follow_the_logliks(tiny_engine):
    result = run_to_end(benchmark.iter_run("units", limit=4, chat_template=False, engine=tiny_engine))
    assert result.n == 4
    for item in result.items:
        assert item.pick == int(np.argmax(item.logliks))
        per_byte = [ll / len((" " + o).encode()) for ll, o in zip(item.logliks, item.options)]
        assert item.pick_norm == int(np.argmax(per_byte))
    assert math.isclose(result.acc, np.mean([i.pick == i.label for i in result.items]))
    api = result.to_api()
    assert set(api) >= {"acc", "acc_norm", "interval", "n", "notices"}


def test_bad_benchmark_input(tiny_engine):
    with pytest.raises(ValueError, match="task must be one of"):
        run_to_end(benchmark.iter_run("trivia", engine=tiny_engine))
    with pytest.raises(ValueError, match="limit must be between 1 and"):
        run_to_end(benchmark.iter_run("units", limit=999, engine=tiny_engine))
    with pytest.raises(ValueError, match="adapter: No LoRA run"):
        run_to_end(benchmark.iter_run("units", adapter="nope", owner="me", limit=2, engine=tiny_engine))


def test_contamination_inflates_the_leaked_items_and_min_k_flags_them(tiny_engine):
    from explorer import lora

    result = run_to_end(contamination.iter_run("capitals", owner="leaker", steps=30, limit=8, seed=0,
                                               engine=tiny_engine))
    leaked, unseen = result.leaked, result.unseen
    assert len(leaked.ids) == len(unseen.ids) == 4 and not set(leaked.ids) & set(unseen.ids)
    # the adapter learned the leaked answers: their accuracy and their Min-K% scores rise
    assert leaked.acc_after > leaked.acc_before
    assert leaked.acc_after - leaked.acc_before >= unseen.acc_after - unseen.acc_before
    assert leaked.min_k_after.mean() > leaked.min_k_before.mean()
    assert (leaked.min_k_after - leaked.min_k_before).mean() > (unseen.min_k_after - unseen.min_k_before).mean()
    assert result.auroc_after >= 0.75
    # the adapter is the session's: it scores through /benchmark for its owner and is refused for another
    again = run_to_end(benchmark.iter_run("capitals", adapter=result.run_id, owner="leaker", limit=2,
                                          chat_template=True, engine=tiny_engine))
    assert again.adapter == result.run_id
    with pytest.raises(ValueError, match="adapter"):
        run_to_end(benchmark.iter_run("capitals", adapter=result.run_id, owner="someone-else", limit=2,
                                      engine=tiny_engine))
    assert lora.get_run(result.run_id, "leaker").status == "done"


def test_contamination_bad_input(tiny_engine):
    for kwargs, message in [({"steps": 0}, "steps must be between"), ({"limit": 2}, "limit must be between"),
                            ({"owner": ""}, "owner"), ({"chat_template": False}, "chat_template")]:
        args = {"task": "capitals", "owner": "x", "steps": 2, "limit": 4, "engine": tiny_engine} | kwargs
        with pytest.raises(ValueError, match=message):
            run_to_end(contamination.iter_run(**args))
