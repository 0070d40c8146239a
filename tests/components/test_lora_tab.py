"""LoRA tab helpers and figures on a tiny model: streaming, re-attaching after a reload, tables and plots."""
from __future__ import annotations

import numpy as np
import pytest
import pandas as pd

from components.tabs.lora import figures as figs
from components.tabs.lora.tab import rows_to_dataset, runs_table, stream, view
from explorer import lora
from explorer.lora.infer import adapter_norms, next_token_shift

PAIRS = [{"prompt": "Name the moon of Veloria.", "response": "Its moon is Pellow."},
         {"prompt": "Name the king of Veloria.", "response": "The king is Arno."}]


def test_rows_to_dataset_drops_blank_rows():
    table = pd.DataFrame([["a", "b"], ["", ""], ["c", "d"]], columns=["prompt", "response"])
    assert rows_to_dataset(table) == [{"prompt": "a", "response": "b"}, {"prompt": "c", "response": "d"}]


def test_stream_reattaches_after_reload_and_renders(tiny_engine):
    owner = "tab-owner"
    run = lora.start_run(owner, PAIRS, {"steps": 8, "batch_size": 2, "r": 4, "target_modules": ["q", "v"]},
                         engine=tiny_engine)
    first_page = stream(owner, run)
    next(first_page)
    first_page.close()  # the page is closed or reloaded mid-run
    reattached = lora.active_run(owner)
    assert reattached is run or run.status != lora.RUNNING
    outputs = list(stream(owner, run))
    run_id, status, loss_fig, diag_fig, runs_fig, table, pick, snap, runs_prov = outputs[-1]
    assert runs_prov.kind == "measured" and "PEFT LoRA training" in runs_prov.source  # the runs table's badge
    assert {f.layout.meta["provenance"]["kind"] for f in (loss_fig, diag_fig, runs_fig)} == {"measured"}
    assert run_id == run.run_id and "done" in status and "8/8" in status and "<progress" in status
    assert snap.run_id == run.run_id and snap.steps_done == 8  # the tab's result state, for the JSON download
    assert len(loss_fig.data) == 3 and len(loss_fig.data[0].y) == 8
    assert len(diag_fig.data) == 2 and len(runs_fig.data) >= 1
    assert table.iloc[-1]["run"] == run.run_id and table.iloc[-1]["steps"] == "8/8"
    assert pick["value"] == run.run_id
    snap = lora.snapshot(run)
    assert figs.run_label(snap).startswith(run.run_id[:6]) and "r=4" in figs.run_label(snap)
    norms = adapter_norms(run)
    assert norms.norms.shape == (2, 2) and norms.modules == ("q_proj", "v_proj") and np.all(norms.norms > 0)
    assert figs.norms_figure(norms).data[0].z is not None
    shift = next_token_shift(run, "Name the moon of Veloria.", top_k=3)
    fig = figs.shift_figure(shift)
    assert len(fig.data) == 2 and len(fig.data[0].x) == len(shift.tokens) >= 3


def test_empty_view_and_status():
    run_id, status, loss_fig, *_ = view("nobody", None)
    assert run_id is None and "No run yet" in status and len(loss_fig.data) == 0
    assert runs_table([]).empty


def test_view_exposes_the_run_as_the_downloadable_result(tiny_engine):
    import json

    from components import share

    owner = "download-owner"
    run = lora.start_run(owner, PAIRS, {"steps": 2, "batch_size": 2, "r": 4, "target_modules": ["q"]},
                         engine=tiny_engine)
    outputs = list(stream(owner, run))
    result = outputs[-1][-2]
    assert result.run_id == run.run_id and result.steps_done == 2
    data = json.load(open(share.result_file(result, "lora")))
    assert data["run_id"] == run.run_id and len(data["loss"]) == 2
    assert data["loss"] == pytest.approx([record.loss for record in run.records])
