"""DPO section helpers and figures on a tiny model: streaming to the end, the runs table, the live figure."""
from __future__ import annotations

import pandas as pd

from components import badge
from components.tabs.lora import dpo_figures as figs
from components.tabs.lora.dpo_tab import BASE_REF, dpo_settings_dict, pairs_of, sft_choices, stream
from explorer.lora import dpo

PAIRS = [{"prompt": "Name the moon of Veloria.", "chosen": "Pellow.", "rejected": "Well, it is a long story."},
         {"prompt": "Name the king of Veloria.", "chosen": "Arno.", "rejected": "Let me think about kings."}]


def test_pairs_table_and_settings():
    table = pd.DataFrame([["a", "b", "c"], ["", "", ""], ["d", "e", "f"]], columns=["prompt", "chosen", "rejected"])
    assert pairs_of(table) == [{"prompt": "a", "chosen": "b", "rejected": "c"},
                               {"prompt": "d", "chosen": "e", "rejected": "f"}]
    values = dpo_settings_dict(5, 1e-3, 0.2, 4, 8, 2, 0, BASE_REF, "m")
    assert values["start_from"] is None and values["beta"] == 0.2 and values["rank"] == 4


def test_stream_renders_every_step_and_the_end(tiny_engine):
    owner = "dpo-tab"
    run = dpo.start_dpo(owner, PAIRS, {"steps": 4, "batch_size": 2, "rank": 4, "kl_every": 2,
                                       "learning_rate": 1e-2, "target_modules": ["q", "v"]}, engine=tiny_engine)
    outputs = list(stream(owner, run))
    run_id, status, fig, runs_fig, table, table_prov, choices = outputs[-1]
    assert table_prov.kind == "measured" and table_prov.source == dpo.snapshot(run).provenance.source
    assert badge.provenance_of(fig).kind == "measured" and badge.provenance_of(runs_fig).kind == "measured"
    assert run_id == run.run_id and "done" in status and "4/4" in status and "margin" in status
    names = [t.name for t in fig.data]
    assert names[:3] == ["margin", "chosen reward", "rejected reward"] and "KL" in names
    assert len(fig.data[0].y) == 4 and list(fig.data[names.index("KL")].x) == [2, 4]
    assert table.iloc[-1]["run"] == run.run_id and table.iloc[-1]["steps"] == "4/4"
    assert len(runs_fig.data) == 1 and choices["choices"] == sft_choices(owner) == [BASE_REF]
    assert "No DPO run yet" in figs.dpo_status_html(None) and len(figs.dpo_figure(None).data) == 0
