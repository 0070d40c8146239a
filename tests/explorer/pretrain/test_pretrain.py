"""Pretraining lens: corpus and tokenizer, the loss against transformers', training, sessions, the queue, bad input."""
import dataclasses
import math
import threading
import uuid
from types import SimpleNamespace

import pytest
import torch

from explorer import pretrain
from explorer.core.config import get_limits
from explorer.pretrain import corpus, data, model as pmodel, runs, tokenizer


def owner() -> str:
    return "test-" + uuid.uuid4().hex[:8]


def test_corpus_first_megabyte_is_pinned_and_seeded():
    assert corpus.first_megabyte_sha256() == corpus.FIRST_MB_SHA256
    assert corpus.corpus_text(5000, seed=7) == corpus.corpus_text(5000, seed=7)
    assert corpus.corpus_text(5000, seed=7) != corpus.corpus_text(5000, seed=8)


def test_tokenizer_round_trips_the_corpus():
    tok = tokenizer.load_tokenizer()
    assert tok.get_vocab_size() == tokenizer.VOCAB_SIZE
    text = corpus.corpus_text(200_000)
    assert tok.decode(tok.encode(text).ids) == text
    docs = corpus.documents(50, corpus.VALID_SEED)
    assert tokenizer.decode(tokenizer.encode_documents(docs)) == "".join(d + "\n" for d in docs)


def test_shipped_tokenizer_is_what_training_makes():
    retrained = tokenizer.train_tokenizer(corpus.corpus_text(tokenizer.TRAIN_CHARS))
    assert retrained.get_vocab() == tokenizer.load_tokenizer().get_vocab()


def test_loss_equals_transformers_loss_on_the_same_batch():
    settings, _ = pmodel.settings_from_dict({"d_model": 32, "heads": 2, "layers": 2, "seq_len": 24})
    model = pmodel.build_model(settings, tokenizer.VOCAB_SIZE)
    x = data.batch(data.corpus("clean").train, 4, 24, torch.Generator().manual_seed(3))
    ours = pmodel.lm_loss(model(input_ids=x).logits, x)
    theirs = model(input_ids=x, labels=x).loss
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert math.isclose(float(ours.detach()), math.log(tokenizer.VOCAB_SIZE), rel_tol=0.05)  # random init ~ uniform


def test_parameter_counts_split_embedding():
    settings, _ = pmodel.settings_from_dict({})
    model = pmodel.build_model(settings, tokenizer.VOCAB_SIZE)
    n, emb = pmodel.count_parameters(model)
    d, layers = settings.d_model, settings.layers
    assert emb == tokenizer.VOCAB_SIZE * d
    assert n == layers * (4 * d * d + 3 * d * 4 * d + 2 * d) + d  # attention, MLP, two norms per layer, final norm


def test_defaults_lower_the_loss_by_a_fifth_and_stream_samples():
    result = pretrain.run({}, owner=owner())
    api = pretrain.to_api(result)
    assert result.status == "done" and len(api["losses"]) == 60
    assert api["losses"][-1] <= 0.8 * api["losses"][0]
    assert api["val_losses"][-1] <= 0.8 * api["val_losses"][0]
    assert api["tokens_seen"] == 60 * 16 * 64 and api["non_embedding_params"] > 100_000
    assert [s["step"] for s in api["samples"]] == [20, 40, 60]
    assert all(s["text"].startswith("Once upon a time") for s in api["samples"])


def test_induction_score_rises_after_the_phase_change():
    result = pretrain.run(owner=owner(), kind="induction")
    curve = result.curves[0]
    assert result.status == "done"
    step = curve.phase_change_step
    assert step is not None, "no phase change in the pinned configuration"
    assert curve.second_half[-1] < 0.5 * curve.first_half[-1]  # copying works, random tokens stay unpredictable
    first = curve.scores[0][1].max()
    i = next(i for i, s in enumerate(curve.score_steps) if s >= step)
    last = curve.scores[-1][1].max()
    assert first < 0.15 and last > 0.4 and last > 2 * curve.scores[max(0, i - 10)][1].max()


def test_bad_settings_raise_or_are_capped():
    with pytest.raises(ValueError, match="heads"):
        pmodel.settings_from_dict({"d_model": 64, "heads": 3})
    for lr in (0, -1e-3, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="lr"):
            pmodel.settings_from_dict({"lr": lr})
    with pytest.raises(ValueError, match="unknown"):
        pmodel.settings_from_dict({"learning_rate": 1e-3})
    parsed, notices = pmodel.settings_from_dict({"steps": 10**6, "d_model": 4096, "heads": 16})
    assert parsed.steps == get_limits().max_pretrain_steps and parsed.d_model == get_limits().max_pretrain_d_model
    assert any("steps" in n for n in notices) and any("d_model" in n for n in notices)


def test_sequence_longer_than_the_corpus_allows(monkeypatch):
    monkeypatch.setattr(pmodel, "get_limits", lambda: dataclasses.replace(get_limits(), max_pretrain_seq_len=10**7))
    with pytest.raises(ValueError, match="longer than the corpus"):
        pretrain.start(owner(), settings={"seq_len": 10**6})


def test_diverged_run_stops_and_says_so():
    result = pretrain.run({"lr": 1.0, "steps": 40}, owner=owner())
    assert result.status == "stopped" and "Diverged" in result.message and result.curves[0].status == "diverged"
    assert len(result.curves[0].losses) < 40


def test_sessions_never_share_runs_and_one_run_per_session():
    a, b = owner(), owner()
    job_a = pretrain.start(a, settings={"steps": 30, "seed": 1})
    with pytest.raises(ValueError, match="already going"):
        pretrain.start(a, settings={"steps": 5})
    job_b = pretrain.start(b, settings={"steps": 30, "seed": 2})
    with pytest.raises(ValueError, match="belong to the session"):
        pretrain.get_job(job_a.run_id, b)
    ra, rb = pretrain.snapshot(pretrain.wait(job_a)), pretrain.snapshot(pretrain.wait(job_b))
    assert pretrain.jobs_for(a) == [job_a] and pretrain.jobs_for(b) == [job_b]
    assert ra.curves[0].losses != rb.curves[0].losses and job_a.curves[0] is not job_b.curves[0]


def test_cap_queues_a_third_run_and_a_full_queue_refuses(monkeypatch):
    monkeypatch.setattr(runs, "get_limits", lambda: dataclasses.replace(get_limits(), max_pretrain_runs=2,
                                                                        pretrain_queue_size=1))
    gate = threading.Event()
    owners = [owner() for _ in range(4)]

    def blocked(job):
        gate.wait(30)
        yield 1

    jobs = [runs.start_job(o, "pretrain", 1, blocked) for o in owners[:3]]
    try:
        deadline = threading.Event()
        for _ in range(100):
            if sum(j.state == runs.RUNNING for j in jobs) == 2:
                break
            deadline.wait(0.05)
        assert [j.state for j in jobs].count(runs.RUNNING) == 2 and jobs[2].state == runs.QUEUED
        snap = pretrain.snapshot(jobs[2])
        assert snap.queue_position == 1 and snap.wait_s > 0
        with pytest.raises(ValueError, match="queue is full.*about \\d+ s"):
            runs.start_job(owners[3], "pretrain", 1, blocked)
    finally:
        gate.set()
    for job in jobs:
        runs.wait(job, 30)
    assert [j.status for j in jobs] == ["done"] * 3


def test_stop_ends_a_run_with_the_steps_it_kept():
    me = owner()
    job = pretrain.start(me, settings={"steps": 2000})
    while not job.curves or len(job.curves[0].losses) < 3:
        job.thread.join(0.05)
    pretrain.stop(me)
    result = pretrain.snapshot(pretrain.wait(job, 30))
    assert result.status == "stopped" and "Stopped after" in result.message
    assert 3 <= len(result.curves[0].losses) < 2000


def test_hyper_pair_differs_in_one_setting_and_too_high_a_rate_diverges():
    from explorer.pretrain import experiments

    for row in experiments.HYPER_ROWS:
        (_, a), (_, b) = experiments.pair_settings(row)
        assert {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)} <= {"lr", "warmup", "clip", "weight_decay",
                                                                            "dropout", "batch_size", "seq_len",
                                                                            "layers", "d_model"}
    result = pretrain.run({"seed": 0}, owner=owner(), kind="hyper", row="lr")
    good, high = result.curves
    assert result.status == "done" and good.status == "done" and high.status == "diverged"
    assert good.losses[-1] < 0.8 * good.losses[0]


def test_data_variants_hold_the_same_tokens_except_the_repeated_fraction():
    clean, corrupted, repeated = (data.corpus(v) for v in data.VARIANTS)
    assert repeated.train_tokens < clean.train_tokens / 6
    assert abs(corrupted.train_tokens - clean.train_tokens) < 0.05 * clean.train_tokens
    assert corrupted.valid is clean.valid  # every variant is judged on the same clean validation text


def test_stored_long_runs_load_with_their_command():
    from explorer.pretrain import stored

    curve, prov, how = stored.load("pretrain")
    assert prov.kind == "stored" and "python -m explorer.pretrain.stored" in prov.source
    assert curve.settings.steps == stored.LONG_PRETRAIN["steps"] == len(curve.losses)
    assert curve.val_losses[-1] < 0.3 * curve.val_losses[0] and curve.samples[-1][1].startswith("Once upon a time")
    icurve, iprov, _ = stored.load("induction")
    assert iprov.kind == "stored" and icurve.phase_change_step is not None
    assert icurve.scores[-1][1].max() > 0.5


def test_a_job_yields_while_a_shared_model_is_busy(monkeypatch):
    import time

    busy = SimpleNamespace(busy=True, waiting=1)
    monkeypatch.setattr(runs, "all_turn_locks", lambda: [busy])
    t0 = time.monotonic()
    runs.yield_to_interactive()
    assert runs.MAX_YIELD_S - 0.05 <= time.monotonic() - t0 < runs.MAX_YIELD_S + 0.5
    busy.busy, busy.waiting = False, 0
    t0 = time.monotonic()
    runs.yield_to_interactive()
    assert time.monotonic() - t0 < 0.05


def test_samples_with_the_kv_cache_equal_uncached_sampling_and_leave_the_global_rng_alone():
    settings, _ = pmodel.settings_from_dict({"d_model": 32, "heads": 2})
    model = pmodel.build_model(settings, tokenizer.VOCAB_SIZE).eval()
    prompt = tokenizer.load_tokenizer().encode("Once upon a time").ids
    state = torch.random.get_rng_state()
    ours = pmodel.sample_text(model, prompt, 12, torch.Generator().manual_seed(5))
    assert torch.equal(state, torch.random.get_rng_state())
    ids, gen, ref = torch.tensor([prompt]), torch.Generator().manual_seed(5), []
    with torch.no_grad():
        for _ in range(12):
            probs = torch.softmax(model(input_ids=ids).logits[0, -1].float(), -1)
            nxt = torch.multinomial(probs, 1, generator=gen)
            ref.append(int(nxt))
            ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    assert ours == ref
