"""Provenance badges (components/badge.py): the five kinds rendered from a result's provenance, drawn into
plotly figures once, carried by table badge slots, and turned CACHED (with "computed N s ago") when the
result cache serves a handler's outputs again."""
from __future__ import annotations

import time

import plotly.graph_objects as go
import pytest

from components import badge
from components import serving as S
from explorer.core import provenance as P

WHEN = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def _all_kinds():
    return {"measured": P.Provenance("measured", "Engine.forward", WHEN, "smollm2-135m-instruct"),
            "cached": P.Provenance("cached", "Engine.forward", WHEN, "smollm2-135m-instruct"),
            "stored": P.stored("data/x.json", "python bench/bench_x.py --write", when=WHEN),
            "formula": P.Provenance("formula", "2 x layers x KV heads x head dim x bytes", WHEN),
            "simulated": P.Provenance("simulated", "block table from the lengths", WHEN)}


def test_each_kind_says_what_it_is_and_where_it_comes_from():
    lines = {kind: badge.describe(prov, now=WHEN + 12) for kind, prov in _all_kinds().items()}
    assert lines["measured"][:2] == ("MEASURED", "on smollm2-135m-instruct")
    assert lines["cached"][:2] == ("CACHED", "computed 12 s ago")
    assert badge.describe(_all_kinds()["cached"], now=WHEN + 600)[1] == "computed 10 min ago"
    assert lines["stored"][:2] == ("STORED", "data/x.json")
    assert "python bench/bench_x.py --write" in lines["stored"][2]  # the command is in the full text
    assert lines["formula"][:2] == ("FORMULA", "2 x layers x KV heads x head dim x bytes")
    assert lines["simulated"][0] == "SIMULATED"
    assert all(full.endswith("2023-11-14 22:13:20 UTC") for _, _, full in lines.values())
    with pytest.raises(ValueError, match="provenance"):
        badge.describe(None)


def test_table_badge_html_carries_the_kind_and_accepts_the_api_dict():
    prov = _all_kinds()["stored"]
    html = badge.badge_html(prov, now=WHEN)
    assert "data-kind='stored'" in html and "<b>STORED</b>" in html and "bench_x.py" in html
    assert badge.badge_html(prov.to_api(), now=WHEN) == html  # the JSON form renders the same
    assert badge.badge_html({"provenance": prov.to_api()}, now=WHEN) == html
    assert badge.badge_html(None) == ""


def test_stamp_then_draw_adds_one_badge_annotation_and_keeps_other_meta():
    fig = go.Figure(go.Bar(x=[1], y=[2]), layout={"meta": {"thumb": [4, 4]}})
    badge.stamp(fig, _all_kinds()["formula"])
    assert fig.layout.meta["thumb"] == [4, 4]  # the attention overview's click metadata survives
    badge.draw(fig)
    badge.draw(fig)  # a figure sent twice keeps one badge
    marks = [a for a in fig.layout.annotations if a.name == badge.NAME]
    assert len(marks) == 1 and marks[0].text.startswith("<b>FORMULA</b>")
    assert badge.draw(go.Figure()).layout.annotations == ()  # unstamped: untouched
    assert badge.stamp(go.Figure(), None).layout.meta is None


def test_mark_cached_turns_figures_and_table_badges_cached_without_touching_the_original():
    fig = badge.stamp(go.Figure(go.Scatter(y=[1, 2])), _all_kinds()["measured"])
    out = badge.mark_cached(("text", fig, _all_kinds()["measured"], [1, 2]))
    assert out[0] == "text" and out[3] == [1, 2]
    assert badge.provenance_of(out[1]).kind == "cached" and out[2].kind == "cached"
    assert badge.provenance_of(out[1]).when == WHEN  # when it was computed, not when served
    assert badge.provenance_of(fig).kind == "measured"  # the stored figure itself is not changed


def test_the_result_cache_serves_badges_as_cached_with_their_age():
    calls = []

    def measure(text: str):
        calls.append(text)
        prov = P.measured("test lens", model="m")
        return badge.stamp(go.Figure(go.Bar(y=[len(text)])), prov), prov

    wrapped = S.serve(measure, "tokens", "test-badges", cache=True)
    fig1, prov1 = wrapped(f"badge test {time.time()}")
    assert badge.provenance_of(fig1).kind == "measured" and prov1.kind == "measured"
    fig2, prov2 = wrapped(calls[0])
    assert len(calls) == 1 and prov2.kind == "cached" and prov2.when == prov1.when
    drawn = badge.draw(fig2, now=prov1.when + 12)
    assert [a.text for a in drawn.layout.annotations if a.name == badge.NAME] == ["<b>CACHED</b> · computed 12 s ago"]
    assert "computed 12 s ago" in badge.badge_html(prov2, now=prov1.when + 12)


def test_badge_slot_renders_a_provenance_when_sent():
    import gradio as gr

    with gr.Blocks():
        slot, table = badge.badged_table(headers=["a"], interactive=False)
    prov = _all_kinds()["simulated"]
    assert slot.postprocess(prov) == badge.badge_html(prov)
    assert slot.postprocess("<b>as is</b>") == "<b>as is</b>" and slot.postprocess(None) is None
    assert isinstance(table, gr.Dataframe)


def test_badges_survive_gradios_per_session_copy_after_an_update():
    """After a handler sends ``gr.update()`` (a streaming heartbeat), gradio rebuilds the session's component
    from its class and constructor arguments: the copy still draws badges and the page still uses the stock
    frontends."""
    import json

    import gradio as gr

    from components.theme import theme_plots

    with gr.Blocks() as demo:
        plot = gr.Plot()
        slot, _ = badge.badged_table(headers=["a"], interactive=False)
    theme_plots(demo)
    assert (plot.get_block_name(), slot.get_block_name()) == ("plot", "html")
    plot_copy = type(plot)(**{**plot.constructor_args, "render": False})
    slot_copy = type(slot)(**{**slot.constructor_args, "render": False})
    fig = badge.stamp(go.Figure(go.Bar(y=[1])), _all_kinds()["formula"])
    layout = json.loads(plot_copy.postprocess(fig).plot)["layout"]
    assert [a["name"] for a in layout["annotations"]] == [badge.NAME]
    assert "data-kind='simulated'" in slot_copy.postprocess(_all_kinds()["simulated"])
