"""Training & scale figures draw the engine's records as they are (no torch in the figures module)."""
from types import SimpleNamespace

import numpy as np

from components.tabs.training import figures as figs
from explorer.pretrain import experiments, induction
from explorer.pretrain.data import corpus
from explorer.pretrain.loop import new_curve, train_curve
from explorer.pretrain.model import settings_from_dict


def _curve(steps=6, **extra):
    s, _ = settings_from_dict({"steps": steps, "d_model": 32, "heads": 2, "seq_len": 16, "batch_size": 4,
                               "eval_every": 2, "sample_every": 3, **extra})
    data = corpus("clean")
    curve, model = new_curve("x", s, data)
    train_curve(curve, model, data)
    return curve


def test_live_figure_draws_losses_and_tokens_per_parameter():
    curve = _curve()
    fig = figs.live_figure(curve)
    train, val, ratio, chinchilla = fig.data
    assert list(train.y) == curve.losses and list(val.x) == curve.val_steps and list(val.y) == curve.val_losses
    assert np.isclose(ratio.y[-1], curve.tokens_per_param)
    assert list(chinchilla.y) == [20, 20]  # Chinchilla's compute-optimal tokens per parameter


def test_pair_and_data_figures_draw_each_curve():
    a, b = _curve(clip=0.0), _curve(clip=1.0)
    a.label, b.label = "off", "on"
    fig = figs.pair_figure(SimpleNamespace(curves=(a, b)), experiments.hyper_row("clip"))
    assert [t.name for t in fig.data] == ["off", "on"] and list(fig.data[0].y) == a.grad_norms
    fig = figs.data_figure(SimpleNamespace(curves=(a, b)))
    assert list(fig.data[1].x) == [s * 4 * 16 for s in b.val_steps]


def test_induction_figure_marks_the_phase_change():
    curve = induction.InductionCurve(settings=dict(induction.PINNED, steps=3), losses=[1, 1, 1],
                                     first_half=[3.9, 3.9, 3.9], second_half=[3.9, 1.0, 0.5], score_steps=[1, 3],
                                     scores=[np.zeros((2, 4)), np.full((2, 4), 0.9)])
    assert curve.phase_change_step == 2
    fig = figs.induction_figure(curve)
    assert sum(t.name.startswith("layer 2 head") for t in fig.data) == 4
    assert any(s.x0 == 2 for s in fig.layout.shapes)


def test_status_says_the_queue_place_and_wait():
    result = SimpleNamespace(status="queued", queue_position=2, wait_s=12.4, message="", notices=(),
                             steps_done=0, planned_steps=60, curves=())
    assert "place 2, about 12 s" in figs.status_html(result)
    curve = SimpleNamespace(corpus="clean grammar stories (seed 1234)", corpus_tokens=1_043_041, losses=[])
    line = figs.status_html(SimpleNamespace(status="running", message="", notices=(), steps_done=0, planned_steps=60,
                                            curves=(curve,)))
    assert "corpus: clean grammar stories (seed 1234), 1,043,041 tokens" in line
