"""Figures and tables of the Quantisation tab: result objects in, plotly figures / HTML / rows out (no torch)."""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

COLORS = {"reference": "#444444", "bf16": "#1f77b4", "fp16": "#17becf", "int8": "#2ca02c",
          "nf4": "#d62728", "fp4": "#ff7f0e"}

# The handbook's precisions (bits per weight) for the size table; sizes come from params × bits / 8.
HANDBOOK_BITS = [("float32", 32.0), ("bfloat16", 16.0), ("INT8", 8.0), ("INT4 (GPTQ/AWQ)", 4.0),
                 ("INT4 (GGUF Q4_K_M)", 4.5), ("INT2", 2.0)]


def _color(name: str) -> str:
    return COLORS.get(name, "#7f7f7f")


def _fmt(x, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    return f"{x:.{digits}g}"


def summary_rows(result) -> list[list]:
    """Rows for the side-by-side table: one per method (errors shown in the status column)."""
    ref = result.methods[0]
    rows = []
    for m in result.methods:
        if m.error:
            rows.append([m.name, "–", "–", "–", "–", "–", "–", "–", "–", f"could not run here: {m.error}"])
            continue
        s = m.stats
        rows.append([m.name, round(m.weight_bytes / 2**20, 1), round(m.weight_bytes / ref.weight_bytes, 3),
                     round(m.bits_per_param, 2), _fmt(m.tokens_per_s, 3), round(m.prepare_s, 2),
                     _fmt(s.kld_mean), _fmt(s.kld_p99), round(s.same_top_pct, 1),
                     f"ppl {s.ppl:.3g} (×{s.ppl_ratio:.3f})" + (f"; {m.note}" if m.note else "")])
    return rows


SUMMARY_HEADERS = ["method", "weights MiB", "× reference", "bits/param", "tokens/s", "prepare s",
                   "KL mean", "KL p99", "same top-1 %", "notes"]


def kl_figure(result) -> go.Figure:
    """KL(reference || method) per position on the prompt + reference continuation, one line per method."""
    fig = go.Figure()
    labels = [f"{i}:{t}" for i, t in enumerate(result.tokens[1:], start=1)]
    for m in result.methods:
        if m.kld is None or m.name == "reference":
            continue
        fig.add_trace(go.Scatter(x=list(range(1, len(m.kld) + 1)), y=m.kld, mode="lines+markers", name=m.name,
                                 line={"color": _color(m.name)}, text=labels,
                                 hovertemplate="%{text}<br>KL %{y:.4f} nats<extra>" + m.name + "</extra>"))
    fig.add_vline(x=result.n_prompt - 0.5, line_dash="dot", annotation_text="generation starts")
    fig.update_layout(title="How far each method's next-token distribution moves from the reference",
                      xaxis_title="position (predicting this token)", yaxis_title="KL divergence (nats)",
                      height=380, margin={"t": 50, "b": 40})
    return fig


def _piece(tok: str) -> str:
    return html.escape(tok.replace("Ġ", " ").replace("Ċ", "↵"))


def text_diff_html(result) -> str:
    """Generated text of every method, tokens that differ from the reference's at the same index highlighted."""
    ref = result.methods[0].generated_tokens
    lines = []
    for m in result.methods:
        if m.error:
            lines.append(f"<div><b>{m.name}</b>: <i>could not run here: {html.escape(m.error)}</i></div>")
            continue
        toks = m.generated_tokens
        spans = []
        for i, tok in enumerate(toks):
            differs = i >= len(ref) or tok != ref[i]
            style = "background:#ffd6d6;" if differs and m.name != "reference" else ""
            spans.append(f"<span class='tok-chip' style='{style}'>{_piece(tok)}</span>")
        same = sum(1 for i, t in enumerate(toks) if i < len(ref) and t == ref[i])
        lines.append(f"<div style='margin:4px 0'><b>{m.name}</b> <small>({same}/{len(toks)} tokens as reference)</small><br>"
                     + "".join(spans) + "</div>")
    return "".join(lines)


def distribution_figure(result, position: int) -> go.Figure:
    """Next-token probabilities at ``position`` of the scored sequence: the reference's top-k tokens, one bar
    group per token, one bar per method.

    Args:
        position: index into the sequence (the distribution predicts token ``position + 1``).
    """
    ref = result.methods[0]
    n = ref.topk_ids.shape[0]
    position = int(min(max(position, 0), n - 1))
    names = ref.topk_tokens[position]
    fig = go.Figure()
    for m in result.methods:
        if m.error or m.ref_topk_probs is None:
            continue
        fig.add_trace(go.Bar(x=[_piece(t) for t in names], y=m.ref_topk_probs[position], name=m.name,
                             marker_color=_color(m.name)))
    context = "".join(_piece(t) for t in result.tokens[max(0, position - 8):position + 1])
    fig.update_layout(barmode="group", height=340, yaxis_title="probability",
                      title=f"Next token after position {position}: …{context}", margin={"t": 50, "b": 40})
    return fig


def memory_figure(result) -> go.Figure:
    """Measured weight bytes (MiB) and decode speed (tokens/s) per method."""
    ok = [m for m in result.methods if not m.error]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=[m.name for m in ok], y=[m.weight_bytes / 2**20 for m in ok], name="weights (MiB)",
                         marker_color=[_color(m.name) for m in ok], yaxis="y",
                         text=[f"{m.weight_bytes / 2**20:.0f} MiB" for m in ok], textposition="outside"))
    fig.add_trace(go.Scatter(x=[m.name for m in ok], y=[m.tokens_per_s for m in ok], name="tokens/s",
                             mode="markers+lines", yaxis="y2", marker={"size": 10, "color": "black"}))
    fig.update_layout(title="Measured weight memory and greedy decode speed", height=360,
                      yaxis={"title": "weights (MiB)"},
                      yaxis2={"title": "tokens/s", "overlaying": "y", "side": "right", "rangemode": "tozero"},
                      margin={"t": 50, "b": 40}, legend={"orientation": "h"})
    return fig


def bits_table_rows(result) -> list[list]:
    """The handbook's size table (7B and 70B) from size = params × bits / 8, plus each measured method's
    effective bits per parameter applied to the same model sizes."""
    rows = [[name, bits, round(7e9 * bits / 8 / 1e9, 1), round(70e9 * bits / 8 / 1e9, 1), "handbook"]
            for name, bits in HANDBOOK_BITS]
    for m in result.methods if result else []:
        if not m.error:
            b = m.bits_per_param
            rows.append([f"{m.name} (measured on {result.model})", round(b, 2), round(7e9 * b / 8 / 1e9, 1),
                         round(70e9 * b / 8 / 1e9, 1), "measured"])
    return rows


def bits_provenance(result):
    """The bits table's origin: a formula (size = parameters × bits / 8, the handbook's bit widths; a measured
    method's row applies the same formula to its measured bits per weight)."""
    from explorer.core.provenance import formula

    return formula("size = parameters × bits / 8 (handbook bit widths; measured rows: bits per weight of each "
                   "quantised copy)", model=result.model if result is not None else "")


BITS_HEADERS = ["precision", "bits / weight", "7B size (GB)", "70B size (GB)", "source"]


def passage_rows(data: dict) -> list[list]:
    """Quality table rows from a passage result dict (``{"methods": {name: stats dict or {"error"}}}``)."""
    rows = []
    for name, s in data["methods"].items():
        if "error" in s:
            rows.append([name, "–", "–", "–", "–", "–", "–", "–", s["error"]])
            continue
        rows.append([name, _fmt(s["kld_mean"]), _fmt(s["kld_p99"]), _fmt(s["kld_max"]), round(s["same_top_pct"], 2),
                     round(s["rms_dp_pct"], 3), round(s["ppl"], 3), round(s["ppl_ratio"], 4),
                     _fmt(s.get("weight_bytes", float("nan")) / 2**20 if s.get("weight_bytes") else None)])
    return rows


PASSAGE_HEADERS = ["method", "KL mean", "KL p99", "KL max", "same top-1 %", "RMS Δp (% points)", "perplexity",
                   "ppl ratio", "weights MiB"]


def passage_figure(data: dict, smooth: int = 1) -> go.Figure:
    """KL per position on the reference passage, one line per method (running mean over ``smooth`` tokens)."""
    fig = go.Figure()
    for name, s in data["methods"].items():
        kld = np.asarray(s.get("kld") or [], dtype=float)
        if name == "reference" or kld.size == 0:
            continue
        if smooth > 1 and kld.size >= smooth:
            kld = np.convolve(kld, np.ones(smooth) / smooth, mode="valid")
        fig.add_trace(go.Scatter(y=kld, mode="lines", name=name, line={"color": _color(name), "width": 1}))
    fig.update_layout(title=f"KL per token on the reference passage ({data.get('n_tokens', '?')} tokens, "
                            f"running mean of {smooth})", xaxis_title="scored position",
                      yaxis_title="KL divergence (nats)", height=360, margin={"t": 50, "b": 40})
    return fig


def error_histogram(err) -> go.Figure:
    """Histogram of ``W_dequantised - W`` for one matrix (:class:`explorer.quantization.error.MatrixError`)."""
    centers = (err.hist_edges[:-1] + err.hist_edges[1:]) / 2
    fig = go.Figure(go.Bar(x=centers, y=err.hist_counts, marker_color="#d62728"))
    fig.update_layout(title=f"Quantisation error of {err.name} {err.shape}: relative {err.rel_error:.4f}, "
                            f"max |error| {err.max_abs_error:.3g}", xaxis_title="dequantised − original",
                      yaxis_title="weights", height=320, bargap=0, margin={"t": 50, "b": 40})
    return fig


def error_scatter(err) -> go.Figure:
    """Original vs dequantised values of a random sample of one matrix's weights; the diagonal is no error."""
    lo = float(min(err.sample_original.min(), err.sample_dequantized.min()))
    hi = float(max(err.sample_original.max(), err.sample_dequantized.max()))
    fig = go.Figure(go.Scattergl(x=err.sample_original, y=err.sample_dequantized, mode="markers",
                                 marker={"size": 3, "opacity": 0.5}, name="weights"))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line={"dash": "dot", "color": "gray"}, name="no error"))
    fig.update_layout(title=f"Original vs dequantised ({len(err.sample_original):,} sampled; "
                            f"{err.distinct_values:,} distinct stored values)", xaxis_title="original weight",
                      yaxis_title="dequantised weight", height=320, margin={"t": 50, "b": 40})
    return fig


def error_heatmap(emap, title: str) -> go.Figure:
    """Layers × projections heatmap of relative weight error (:class:`explorer.quantization.error.ErrorMap`)."""
    fig = go.Figure(go.Heatmap(z=emap.rel_error, x=list(emap.projections), y=[str(int(v)) for v in emap.layers],
                               colorscale="Reds", colorbar={"title": "‖ΔW‖/‖W‖"}))
    fig.update_layout(title=title, xaxis_title="projection", yaxis_title="layer", height=460, margin={"t": 50, "b": 40})
    return fig


def outlier_heatmap(oc) -> go.Figure:
    """Layers × projections count of LLM.int8 outlier input features (|x| above the threshold)."""
    fig = go.Figure(go.Heatmap(z=oc.counts, x=list(oc.projections), y=[str(int(v)) for v in oc.layers],
                               colorscale="Greens", customdata=oc.max_abs,
                               hovertemplate="layer %{y} %{x}<br>%{z} features > threshold"
                                             "<br>max |x| %{customdata:.1f}<extra></extra>",
                               colorbar={"title": "features"}))
    fig.update_layout(title=f"LLM.int8 outlier features on this prompt (|activation| > {oc.threshold:g}); "
                            f"total {int(oc.counts.sum())}", xaxis_title="projection input", yaxis_title="layer",
                      height=460, margin={"t": 50, "b": 40})
    return fig
