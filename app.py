"""LLM Explorer: build the page from components/, configure the queue, launch.

Run ``python app.py [--model ID] [--host HOST] [--port PORT] [--share]`` or ``gradio app.py``.
"""
from __future__ import annotations

import argparse
import os

import gradio as gr

from components import compare, room_push, room_routes, rooms, scenes, tour
from components import share
from components import theme
from components.context import AppContext
from components.gpu import wrap_for_zero_gpu
from components.registry import public_api_names, tab_specs
from components.serving import build_recompute, remember_context, start_scene_warm_up, wire_serving
from explorer.core.config import get_limits
from models.registry import DEFAULT_MODEL, embedded_names

DEFAULT_PROMPT = "The capital of France is"
SPACE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
CSS = """
.tok-chip{display:inline-block;border-radius:4px;padding:1px 3px;margin:1px;font-family:monospace;white-space:pre}
""" + share.CSS + theme.CSS


def import_model_libraries() -> None:
    """Import transformers' auto classes once, in this thread: its lazy module is not safe to import for the
    first time from several threads at once, and the page's load handlers (tokens, LoRA) run in parallel, which
    made a first request fail at random with "cannot import name 'AutoTokenizer' from 'transformers'"."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # noqa: F401


def build_demo(initial_model: str | None = None, talk_path: str | None = None) -> gr.Blocks:
    """Build the whole page: prompt bar and model picker on top, one tab per lens below.

    ``talk_path`` (or ``LLM_EXPLORER_TALK``): a talk file shown in stored mode (``components/rooms.py``)."""
    import_model_libraries()
    limits = get_limits()
    initial_model = initial_model or default_model()
    with gr.Blocks(title="LLM Explorer") as demo:
        gr.Markdown("# LLM Explorer\nLook inside a real language model while it works: type once, then walk through the tabs.")
        with gr.Row():
            prompt = gr.Textbox(label="Prompt", value=DEFAULT_PROMPT, lines=2, scale=4, elem_id="prompt")
            model = gr.Dropdown(label="Model", choices=_choices(initial_model), value=initial_model,
                                allow_custom_value=True, scale=1, elem_id="model",
                                info="Embedded models work offline; type a Hub id (owner/name) when online.")
            compare_model = compare.build_picker()
            build_recompute()
        notice = gr.Markdown(compare.model_notice(initial_model), elem_id="model-notice")
        ctx = AppContext(prompt=prompt, model=model, limits=limits, compare_model=compare_model)
        compare.wire_notice(ctx, notice)
        specs = tab_specs()
        tab_keys = [spec.key for spec in specs]
        bar = share.build_share_bar(ctx, tab_keys)
        with gr.Accordion("Presenter scenes", open=False, elem_id="scenes-box"):
            gallery = scenes.build_gallery()
        tour_parts = tour.build()
        room = rooms.build_panel(ctx, talk_path or os.environ.get("LLM_EXPLORER_TALK") or None)
        tab_items = []
        with gr.Tabs(elem_id="lens-tabs") as tabs:
            ctx.tabs = tabs
            for spec in specs:
                with gr.Tab(spec.label, id=spec.key, elem_id=f"tab-{spec.key}") as tab:
                    parts = spec.build(ctx)
                    share.add_download(spec.key, parts)
                    ctx.extra[spec.key] = parts
                tab_items.append((spec.key, tab))
        for block in ctx.page_level:  # mounted with the page, so load handlers read their stored values
            block.render()
        share.wire(demo, ctx, bar, tab_items)
        scenes.wire_gallery(gallery, ctx, bar, tab_keys)
        tour.wire(tour_parts, ctx, bar, tab_keys)
        rooms.wire(demo, ctx, room, bar, specs)
    theme.theme_plots(demo)  # every figure follows the light/dark page theme
    hide_internal_endpoints(demo)
    wrap_for_zero_gpu(demo, limits, specs)  # first, so the result cache below answers before any GPU call
    wire_serving(demo, specs)
    room_push.hook_results(demo, specs)  # a room's presenter's results are pushed as served (render once)
    room_routes.mount(demo)  # every demo.launch(...) serves the rooms' push routes on Gradio's FastAPI app
    remember_context(demo, ctx)  # for the presenter scenes computed at start-up (main)
    demo.queue(max_size=limits.queue_size, default_concurrency_limit=limits.concurrency)
    return demo


def hide_internal_endpoints(demo: gr.Blocks) -> None:
    """Keep only the documented JSON APIs in the API page; UI-only handlers stay callable by the page."""
    public = public_api_names() | set(rooms.API_NAMES)
    for block_fn in demo.fns.values():
        if block_fn.api_name not in public and getattr(block_fn, "api_visibility", "public") == "public":
            block_fn.api_visibility = "undocumented"


def _choices(initial_model: str) -> list[str]:
    names = embedded_names()
    return names if initial_model in names else [initial_model] + names


def default_model() -> str:
    """The model selected when the page opens: ``LLM_EXPLORER_MODEL``; on a Hugging Face Space with the Hub
    reachable, the true bf16 SmolLM2 from the Hub; otherwise the embedded GGUF."""
    if os.environ.get("LLM_EXPLORER_MODEL"):
        return os.environ["LLM_EXPLORER_MODEL"]
    from models.hub import hub_offline

    if os.environ.get("SPACE_ID") and not hub_offline():
        return SPACE_MODEL
    return DEFAULT_MODEL


def warm_up(model: str) -> None:
    """Load the default model and the offline tokenizers before the first visitor arrives."""
    from explorer import tokens
    from explorer.core.engine import get_engine

    try:
        get_engine(model)
    except ValueError as exc:  # e.g. the Hub went away: the page still opens on the embedded model
        print(f"Could not preload {model}: {exc}")
    tokens.run("warm up")


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve the app."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="default model (embedded name or Hub id)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link")
    parser.add_argument("--talk", default=None, help="a talk file (exported room) to open in stored mode, for a "
                        "machine where the model is missing or fails to load")
    args = parser.parse_args(argv)
    from explorer.serving import threads

    if not threads.configure():  # before torch loads: idle OpenMP threads sleep instead of spinning (a room)
        print("torch was imported before app.main; OMP_WAIT_POLICY could not take effect.")
    warm_up(args.model or default_model())
    demo = build_demo(args.model, talk_path=args.talk)
    start_scene_warm_up(demo)  # presenter scenes computed in the background (LLM_EXPLORER_WARM_SCENES=0: off)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, css=CSS)


demo = build_demo() if __name__ != "__main__" and os.environ.get("GRADIO_WATCH_DIRS") else None

if __name__ == "__main__":
    main()
