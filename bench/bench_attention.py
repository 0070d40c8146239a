"""Attention tab benchmark: capture cost, overview payload, and how fast a browser draws the overview.

Prints (one line each, baselines measured in the same run):
- capture time at 128 and 512 tokens (eager attention + ``output_attentions``) vs a plain SDPA forward;
- overview figure payload at 512 tokens vs one full-resolution detail heatmap;
- browser time to draw the overview at 512 tokens with plotly.js (``Plotly.newPlot``) vs the 512-token detail heatmap;
- in the app launched in-process: click on “Capture attention” until the overview is drawn, vs the
  server-side handler time (capture + overview figure).

The browser parts use Playwright with Debian's Chromium (``/usr/bin/chromium``) and are skipped with a
note when either is missing. Run: ``python bench/bench_attention.py [--repeats N] [--no-browser]``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import report, timed  # noqa: E402  (also puts the repository root on sys.path)

import torch  # noqa: E402

from components.tabs.attention.figures import detail_figure, overview_figure  # noqa: E402
from explorer import attention  # noqa: E402
from explorer.core.engine import get_engine  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--headless"]
TEXT = ("Attention lets every token look back at the tokens before it. Each head learns its own pattern: "
        "some look at the previous token, some at the first token, some at matching words. ")


def text_of(engine, n_tokens: int) -> str:
    """A prompt of exactly ``n_tokens`` tokens for ``engine`` (plain text, repeated)."""
    ids = engine.encode(TEXT * 40, max_tokens=100_000)[:n_tokens]
    text = engine.decode(ids)
    assert len(engine.encode(text, max_tokens=100_000)) >= n_tokens - 2
    return text


def bench_capture(engine, repeats: int) -> None:
    """Eager capture vs plain SDPA forward (medians of ``repeats``), at 128 and 512 tokens."""
    for n in (128, 512):
        ids = engine.encode(text_of(engine, n), max_tokens=100_000)[:n]
        input_ids = torch.tensor([ids])

        def sdpa():
            with engine.session():
                engine.model(input_ids=input_ids)

        sdpa()
        attention.capture(engine, ids)  # warm both paths
        base = statistics.median(timed(sdpa, repeats))
        cap = statistics.median(timed(lambda: attention.capture(engine, ids), repeats))
        report(f"capture_{n}_tokens_ms", cap * 1000, "ms", baseline=base * 1000,
               baseline_name="sdpa_forward_no_capture", target="<=1.5x" if n == 128 else None)


def figures_512(engine):
    """The overview and one detail figure at 512 tokens, as plotly JSON strings (and their build times)."""
    result = attention.run(text_of(engine, 512), engine=engine, truncate=True).compact()
    start = time.perf_counter()
    overview = overview_figure(result, "entropy").to_json()
    overview_s = time.perf_counter() - start
    detail = detail_figure(result.pattern(10, 0), result.tokens, True, "layer 10 · head 0").to_json()
    return result, overview, detail, overview_s


def bench_payload(overview: str, detail: str, overview_s: float) -> None:
    """Bytes of the overview figure JSON vs one full-resolution 512 × 512 detail heatmap."""
    report("overview_payload_512_tokens_bytes", len(overview.encode()), "bytes", baseline=len(detail.encode()),
           baseline_name="one_head_detail_512_bytes")
    report("overview_figure_build_512_tokens_ms", overview_s * 1000, "ms")


def _launch_browser(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def bench_plotly_render(overview: str, detail: str, repeats: int) -> None:
    """Time ``Plotly.newPlot`` in Chromium for the overview vs the 512-token detail heatmap."""
    import plotly
    from playwright.sync_api import sync_playwright

    plotly_js = os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js")
    with sync_playwright() as p:
        browser = _launch_browser(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_content("<div id='plot'></div>")
        page.add_script_tag(path=plotly_js)
        script = """async (fig) => {
            const f = JSON.parse(fig); const el = document.getElementById('plot');
            const t0 = performance.now(); await Plotly.newPlot(el, f.data, f.layout);
            await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
            const dt = performance.now() - t0; Plotly.purge(el); return dt; }"""
        figures = (("overview", overview), ("detail", detail))
        for _, fig in figures:  # first use of plotly.js (fonts, WebGL probes) is not the figure's cost
            page.evaluate(script, fig)
        times = {name: [page.evaluate(script, fig) for _ in range(repeats)] for name, fig in figures}
        browser.close()
    report("browser_render_overview_512_tokens_ms", statistics.median(times["overview"]), "ms",
           baseline=statistics.median(times["detail"]), baseline_name="browser_render_one_head_detail_512")


def bench_app(engine, repeats: int) -> None:
    """In the app launched in-process: click “Capture attention” at 512 tokens until the overview is drawn."""
    from playwright.sync_api import sync_playwright

    from app import CSS, build_demo
    from components.tabs.attention.tab import _capture

    text = text_of(engine, 512)
    server = statistics.median(timed(lambda: _capture(text, engine.name, "entropy", False, 0, 0, 1, 0,
                                                      progress=lambda *a, **k: None), repeats))
    demo = build_demo()
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True, css=CSS)
    try:
        with sync_playwright() as p:
            browser = _launch_browser(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            times = []
            for _ in range(repeats):  # a fresh page each time, so the overview is not there before the click
                page.goto(url)
                page.locator("#prompt textarea").fill(text)
                page.get_by_role("tab", name="Attention").click()
                start = time.perf_counter()
                page.locator("#attention-run").click()
                page.wait_for_selector("#attention-main-plot .js-plotly-plot .heatmaplayer image", timeout=300_000)
                times.append(time.perf_counter() - start)
            browser.close()
    finally:
        demo.close()
    report("app_click_to_overview_drawn_512_tokens_ms", statistics.median(times) * 1000, "ms",
           baseline=server * 1000, baseline_name="server_handler_capture_plus_figure")


def main(argv: list[str] | None = None) -> None:
    """Run every part; ``--no-browser`` skips the Chromium measurements."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    engine = get_engine("smollm2-135m-instruct")
    print(f"# attention bench: {engine.name} on {engine.device}, {torch.get_num_threads()} threads", flush=True)
    bench_capture(engine, args.repeats)
    _, overview, detail, overview_s = figures_512(engine)
    bench_payload(overview, detail, overview_s)
    if args.no_browser:
        return
    try:
        import playwright  # noqa: F401
    except ImportError:
        print("# browser timings skipped: playwright is not installed", flush=True)
        return
    if not os.path.exists(CHROMIUM):
        print(f"# browser timings skipped: no Chromium at {CHROMIUM}", flush=True)
        return
    bench_plotly_render(overview, detail, args.repeats)
    bench_app(engine, args.repeats)


if __name__ == "__main__":
    main()
