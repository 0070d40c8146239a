"""Cross-request step batching (explorer/core/step_batcher.py): concurrent ``Engine.steps(share=True)`` decodes
share forward passes, and each row equals its solo run (``Engine.steps`` without sharing) token for token."""
import threading

import pytest
import torch

from explorer.core import turns
from explorer.core.patches import ForwardHook
from explorer.core.step_batcher import batcher_for
from explorer.serving import serving_stats

PROMPTS = ["The capital of France is", "Once upon a time, in a small village by the sea,", "2 + 2 =",
           "A list of colours: red, green"]
NEW = 10


def _solo(engine, ids, select=None, n=NEW):
    kwargs = {"select": select} if select else {}
    steps = list(engine.steps(ids, n, stop_at_eos=False, **kwargs))
    return [s.token for s in steps], torch.stack([s.logits for s in steps])


def _together(engine, jobs):
    """Run ``jobs`` (callables) in threads that start while the model's turn is held, so their prefills queue up and
    their rows join one batch; return their results in order."""
    out, errors = [None] * len(jobs), []

    def run(k):
        try:
            out[k] = jobs[k]()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(jobs))]
    with engine.turn():
        for t in threads:
            t.start()
        deadline = threading.Event()
        for _ in range(3000):  # up to 30 s on a loaded machine
            if engine.lock.waiting >= len(jobs):
                break
            deadline.wait(0.01)
    for t in threads:
        t.join(60)
    return out, errors


def _shared(engine, ids, select=None, n=NEW):
    def job():
        kwargs = {"select": select} if select else {}
        steps = list(engine.steps(ids, n, stop_at_eos=False, share=True, **kwargs))
        assert all(s.cache is None for s in steps)  # the shared path ran (the batch owns the cache)
        return [s.token for s in steps], torch.stack([s.logits for s in steps])
    return job


def _sampler(seed):
    generator = torch.Generator().manual_seed(seed)

    def select(logits, index):
        return int(torch.multinomial(torch.softmax(logits / 0.8, -1), 1, generator=generator))
    return select


def test_rows_of_a_shared_batch_equal_their_solo_runs(tiny_engine):
    ids = [tiny_engine.encode(p) for p in PROMPTS]
    solo = [_solo(tiny_engine, i) for i in ids]
    before = len(batcher_for(tiny_engine).recent_sizes())
    out, errors = _together(tiny_engine, [_shared(tiny_engine, i) for i in ids])
    assert not errors
    for (tokens, logits), (ref_tokens, ref_logits) in zip(out, solo):
        assert tokens == ref_tokens
        torch.testing.assert_close(logits, ref_logits, atol=1e-4, rtol=1e-4)
    sizes = batcher_for(tiny_engine).recent_sizes()[before:]
    assert max(sizes) == len(PROMPTS)  # the rows really shared passes
    assert sum(sizes) == len(PROMPTS) * (NEW - 1)  # one decode pass per generated token after the prefill
    stats = serving_stats()  # /serving_stats shows the shared step sizes beside the continuous-batching ones
    assert len(PROMPTS) in stats["step_batch_sizes"]
    assert len(PROMPTS) in stats["per_model"][tiny_engine.name]["step_batch_sizes"]


def test_seeded_sampled_rows_reproduce_and_never_share_a_generator(tiny_engine):
    ids = [tiny_engine.encode(p) for p in PROMPTS]
    seeds = [11, 12, 11, 13]  # rows 0 and 2 have the same seed but different prompts
    solo = [_solo(tiny_engine, i, _sampler(s))[0] for i, s in zip(ids, seeds)]
    for _ in range(2):
        out, errors = _together(tiny_engine, [_shared(tiny_engine, i, _sampler(s)) for i, s in zip(ids, seeds)])
        assert not errors
        assert [tokens for tokens, _ in out] == solo


def test_a_stopped_a_cancelled_and_a_failing_row_leave_and_the_others_finish(tiny_engine):
    ids = [tiny_engine.encode(p) for p in PROMPTS]
    solo = [_solo(tiny_engine, i)[0] for i in ids]
    gone = threading.local()

    def cancelling():
        gone.flag = False
        tokens = []
        with pytest.raises(turns.Cancelled):
            for step in tiny_engine.steps(ids[1], NEW, stop_at_eos=False, share=True):
                tokens.append(step.token)
                gone.flag = step.index >= 2  # the client goes away after three tokens
        return tokens

    def stopping():
        generator = tiny_engine.steps(ids[2], NEW, stop_at_eos=False, share=True)
        tokens = [next(generator).token for _ in range(4)]
        generator.close()  # a Stop between passes
        return tokens

    def failing(index):
        if index == 3:
            raise RuntimeError("this row's select failed")
        return int(index)

    turns.CANCEL_CHECKS.append(lambda: getattr(gone, "flag", False))
    try:
        out, errors = _together(tiny_engine, [lambda: _shared(tiny_engine, ids[0])()[0], cancelling, stopping,
                                              lambda: _shared(tiny_engine, ids[3])()[0],
                                              _shared(tiny_engine, ids[1], lambda logits, i: failing(i))])
    finally:
        turns.CANCEL_CHECKS.pop()
    assert [str(e) for e in errors] == ["this row's select failed"]  # only the failing row failed
    assert out[0] == solo[0] and out[3] == solo[3]
    assert out[1] == solo[1][:3] and out[2] == solo[2][:4]
    assert not batcher_for(tiny_engine)._joining


def test_patched_or_capture_passes_never_join(tiny_engine):
    ids = tiny_engine.encode(PROMPTS[0])
    before = len(batcher_for(tiny_engine).recent_sizes())
    seen = []
    hook = ForwardHook("model.layers.0", lambda module, args, output: seen.append(1))
    patched = list(tiny_engine.steps(ids, 3, share=True, patches=[hook], stop_at_eos=False))
    captured = list(tiny_engine.steps(ids, 3, share=True, forward_kwargs={"output_hidden_states": True},
                                      stop_at_eos=False))
    with tiny_engine.turn():  # a caller that already holds a turn steps alone (the batch's pass would wait on it)
        held = list(tiny_engine.steps(ids, 3, share=True, stop_at_eos=False))
    assert len(seen) == 3 and all(s.cache is not None for s in patched)
    assert all(s.output.hidden_states is not None for s in captured)
    assert all(s.cache is not None for s in held)
    assert len(batcher_for(tiny_engine).recent_sizes()) == before


def test_decode_requests_of_different_users_share_passes_with_unchanged_records(tiny_engine, monkeypatch):
    """``/decode``'s one-strategy requests (``decoding.run`` -> ``token_loop``) with step batching on and off:
    same tokens and per-step records (the batched-decoding tolerances of test_decoding_batched.py)."""
    import numpy as np

    from explorer import decoding
    from explorer.core.config import get_limits

    requests = [(PROMPTS[0], {"name": "greedy"}),
                (PROMPTS[1], {"name": "sampling", "temperature": 0.7, "top_p": 0.95, "top_k": 0, "seed": 1}),
                (PROMPTS[2], {"name": "sampling", "typical_p": 0.9, "repetition_penalty": 1.2, "seed": 4}),
                (PROMPTS[3], {"name": "greedy", "no_repeat_ngram_size": 2})]

    def job(prompt, strategy):
        return lambda: decoding.run(prompt, strategies=[strategy], max_new_tokens=8, engine=tiny_engine)

    monkeypatch.setenv("LLM_EXPLORER_STEP_BATCHING", "0")
    get_limits.cache_clear()
    try:
        before = len(batcher_for(tiny_engine).recent_sizes())
        alone = [job(p, s)() for p, s in requests]
        assert len(batcher_for(tiny_engine).recent_sizes()) == before  # off: nothing shared
    finally:
        monkeypatch.delenv("LLM_EXPLORER_STEP_BATCHING")
        get_limits.cache_clear()
    out, errors = _together(tiny_engine, [job(p, s) for p, s in requests])
    assert not errors
    for shared, single in zip(out, alone):
        a, b = shared.runs[0], single.runs[0]
        assert a.token_ids.tolist() == b.token_ids.tolist(), a.label
        np.testing.assert_allclose(a.token_logprobs, b.token_logprobs, atol=1e-4)
        np.testing.assert_array_equal(a.steps.top_ids, b.steps.top_ids)
        for name in ("raw_probs", "stage_probs", "chosen_raw_probs", "chosen_final_probs"):
            np.testing.assert_allclose(getattr(a.steps, name), getattr(b.steps, name), atol=1e-5, err_msg=name)
    assert max(batcher_for(tiny_engine).recent_sizes()[before:]) == len(requests)


def test_a_failing_shared_pass_ends_its_rows_with_a_clear_error_and_the_batch_restarts(tiny_engine, monkeypatch):
    ids = [tiny_engine.encode(p) for p in PROMPTS[:2]]
    forward = tiny_engine.model.forward

    def broken(*args, **kwargs):
        if kwargs["input_ids"].shape[1] == 1:  # a decode step (the prefills, one prompt each, run alone)
            raise RuntimeError("device lost")
        return forward(*args, **kwargs)

    monkeypatch.setattr(tiny_engine.model, "forward", broken)
    out, errors = _together(tiny_engine, [_shared(tiny_engine, i) for i in ids])
    assert len(errors) == 2 and all("shared decode pass failed: device lost" in str(e) for e in errors)
    monkeypatch.setattr(tiny_engine.model, "forward", forward)
    assert _shared(tiny_engine, ids[0])()[0] == _solo(tiny_engine, ids[0])[0]


def test_a_sliding_window_model_steps_alone(tiny_engine):
    """Gemma 3's sliding-window cache layers cannot be left-padded and stacked: its shared steps run alone, equal to
    the plain path."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from explorer.core.engine import Engine
    from models.loading import LoadedModel
    from models.registry import ModelSpec

    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=len(tiny_engine.tokenizer), hidden_size=64, intermediate_size=128,
                              num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                              sliding_window=8, layer_types=["sliding_attention", "full_attention"])
    model = Gemma3ForCausalLM(config).eval().requires_grad_(False)
    spec = ModelSpec("tiny-gemma3-sliding", "causal-lm", "hub", "tiny", "tiny test model")
    engine = Engine(LoadedModel(spec=spec, model=model, tokenizer=tiny_engine.tokenizer, device=torch.device("cpu"),
                                dtype=torch.float32))
    ids = engine.encode(PROMPTS[1])
    shared = list(engine.steps(ids, 5, share=True, stop_at_eos=False))
    assert all(s.cache is not None for s in shared)  # the plain path ran
    assert [s.token for s in shared] == _solo(engine, ids, n=5)[0]
    assert not batcher_for(engine).recent_sizes()


def test_training_keeps_its_turns_while_shared_rows_decode(tiny_engine):
    """Each tick is one interactive turn, so a training loop that waits meanwhile still gets turns between ticks."""
    ids = [tiny_engine.encode(p) for p in PROMPTS]
    done, training_turns = threading.Event(), []

    def train():
        while not done.is_set():
            with tiny_engine.turn("training"):
                training_turns.append(len(batcher_for(tiny_engine).recent_sizes()))
                done.wait(0.002)

    before = len(batcher_for(tiny_engine).recent_sizes())
    trainer = threading.Thread(target=train)
    trainer.start()
    try:
        out, errors = _together(tiny_engine, [_shared(tiny_engine, i, n=30) for i in ids])
    finally:
        done.set()
        trainer.join(10)
    assert not errors
    ticks = len(batcher_for(tiny_engine).recent_sizes()) - before
    during = [n for n in training_turns if before < n < before + ticks]
    assert len(during) >= ticks // 4  # training turns interleave with the ticks (1 in 3 when both wait)


def test_rows_that_choose_at_different_speeds_stay_in_one_phase(tiny_engine, monkeypatch):
    """The gather window counts from the last tick's delivery, so a row still choosing is waited for and the rows
    tick together instead of splitting into groups that take turns (one pass per generated token, plus at most
    one for a row that joined late and one for the row it leaves behind at the end)."""
    import random

    from explorer.core.config import get_limits

    monkeypatch.setenv("LLM_EXPLORER_STEP_GATHER_MS", "3000")  # generous, so a loaded machine cannot split them
    get_limits.cache_clear()
    ids = [tiny_engine.encode(p) for p in PROMPTS]
    rng = random.Random(0)
    delays = [[rng.uniform(0.0, 0.03) for _ in range(NEW)] for _ in ids]

    def slow(row):
        def select(logits, index):
            threading.Event().wait(delays[row][index])
            return int(logits.argmax())
        return select

    try:
        before = len(batcher_for(tiny_engine).recent_sizes())
        out, errors = _together(tiny_engine, [_shared(tiny_engine, i, slow(k)) for k, i in enumerate(ids)])
        sizes = batcher_for(tiny_engine).recent_sizes()[before:]
    finally:
        monkeypatch.delenv("LLM_EXPLORER_STEP_GATHER_MS")
        get_limits.cache_clear()
    assert not errors
    assert [tokens for tokens, _ in out] == [_solo(tiny_engine, i)[0] for i in ids]
    assert sum(sizes) == len(PROMPTS) * (NEW - 1) and len(sizes) <= NEW + 1
    assert sizes.count(len(PROMPTS)) >= NEW - 3


def test_a_request_alone_steps_in_its_own_thread_and_rows_get_their_own_logits(tiny_engine, monkeypatch):
    """No hand-off for a lone request: its shared passes run in the caller's thread (as the unshared path does).
    In a batch each row's logits are its own tensor, never a view that reaches the other rows' logits."""
    ids = [tiny_engine.encode(p) for p in PROMPTS[:2]]
    forward, threads = tiny_engine.model.forward, set()

    def recording(*args, **kwargs):
        threads.add(threading.get_ident())
        return forward(*args, **kwargs)

    monkeypatch.setattr(tiny_engine.model, "forward", recording)
    alone = list(tiny_engine.steps(ids[0], 4, stop_at_eos=False, share=True))
    assert all(s.cache is None for s in alone) and threads == {threading.get_ident()}
    before = len(batcher_for(tiny_engine).recent_sizes())

    def storage_bytes(i):
        return lambda: [s.logits.untyped_storage().nbytes() for s in tiny_engine.steps(i, NEW, stop_at_eos=False,
                                                                                         share=True)]
    out, errors = _together(tiny_engine, [storage_bytes(i) for i in ids])
    assert not errors and max(batcher_for(tiny_engine).recent_sizes()[before:]) == 2
    vocab = tiny_engine.model.config.vocab_size
    assert out == [[vocab * 4] * NEW] * 2
