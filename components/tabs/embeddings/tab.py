"""The Embeddings & RAG tab: follow one question from its MiniLM vector to retrieved passages (three metrics
side by side) to a grounded answer beside the bare one; chunking and recall@k; your own passages (this session
only); sentence embeddings vs decoder hidden states (AUROC); the token embedding matrix; accuracy with and
without retrieval. Handlers call ``explorer.embeddings`` and draw with ``components.tabs.embeddings.figures``.
"""
from __future__ import annotations

import gradio as gr

from components.badge import badged_table, stamp
from components.errors import ui_errors
from components.tabs.embeddings import figures as figs
from explorer import embeddings as emb
from explorer.core.engine import get_engine
from explorer.embeddings import accuracy as emb_accuracy
from explorer.embeddings.corpus import CHUNK_SIZES
from explorer.embeddings.store import MAX_PASSAGE_CHARS, MAX_USER_PASSAGES, SessionPassages

CHUNK_CHOICES = [("passages as written", 0)] + [(f"{n} words", n) for n in CHUNK_SIZES]
PASSAGE_HEADERS = ["rank", "score", "source", "text"]


def _notices(items) -> None:
    for note in items or []:
        gr.Warning(note)


def _drop_session(session) -> None:
    """``gr.State`` delete callback: the session ended, remove its passages from the store."""
    if isinstance(session, SessionPassages):
        session.drop()


def _answers_md(result) -> str:
    return (f"**With retrieval** (k = {result.k}, prompt {result.prompt_tokens} tokens): {result.answer or '_(empty)_'}\n\n"
            f"**Without retrieval** (prompt {result.bare_prompt_tokens} tokens): "
            f"{result.answer_without_retrieval or '_(empty)_'}\n\n"
            f"_{result.ms / 1000:.1f} s; {result.provenance.kind}: {result.provenance.source}_")


def _question_section(ctx) -> dict:
    gr.Markdown("Type a question. It is embedded with MiniLM, the most similar chunks are fetched from a local "
                "**Chroma** database (cosine, dot product and Euclidean side by side), the top ones go into the "
                "prompt, and SmolLM2 answers greedily, beside its answer without them. Many places in the corpus "
                "are invented (Velmora, Quillhaven, Brannock Isle ...), so the model can only know them from the passages. "
                "SmolLM2-135M reads one passage well; with several similar ones it often loses track (try k = 3).")
    with gr.Row():
        question = gr.Textbox("Who founded Velmora?", label="question", scale=3)
        k = gr.Slider(1, emb.rag.MAX_RAG_K, value=1, step=1, label="k (passages in the prompt)")
        metric = gr.Radio(list(emb.METRICS), value="cosine", label="metric used for the prompt")
        chunk = gr.Dropdown(CHUNK_CHOICES, value=0, label="chunk size")
    run = gr.Button("Retrieve and answer", variant="primary", elem_id="embeddings-run")
    plot = gr.Plot(elem_id="embeddings-main-plot", label="retrieved chunks per metric")
    answers = gr.Markdown(elem_id="embeddings-answers")
    table_badge, table = badged_table(headers=PASSAGE_HEADERS, interactive=False, label="passages in the prompt",
                                      wrap=True, elem_id="embeddings-passages")
    prompt = gr.Code(label="the prompt's user turn", language=None, lines=6)
    attr_run = gr.Button("Which passages did the answer draw on? (captum attribution)")
    attr_plot = gr.Plot(label="attribution over the retrieved passages")
    attr_md = gr.Markdown()
    state = gr.State(None)
    return {"question": question, "k": k, "metric": metric, "chunk_size": chunk, "run": run, "plot": plot,
            "answers": answers, "table": table, "table_badge": table_badge, "prompt_box": prompt, "attr_run": attr_run, "attr_plot": attr_plot,
            "attr_md": attr_md, "state": state, "result": state}


def _store_section() -> dict:
    gr.Markdown("Chunking cuts the corpus (read as one long text) into windows of N words. Too small and a chunk "
                "loses the name it is about; too large and one vector averages several topics. Measured: recall@k "
                "of the labelled queries for each chunk size. MiniLM vectors have unit length, so the three metrics "
                "rank the same chunks in the same order; only the score scale differs.")
    recall_run = gr.Button("Measure recall@k per chunk size")
    recall_plot = gr.Plot(label="recall@k vs chunk size")
    recall_md = gr.Markdown()
    gr.Markdown(f"**Your own passages** (one per line, at most {MAX_USER_PASSAGES}, each up to {MAX_PASSAGE_CHARS:,} "
                "characters). They go into a collection only this browser session can search, and are deleted "
                "when the session ends.")
    with gr.Row():
        user_text = gr.Textbox(lines=3, label="passages", placeholder="Zorbland is a moon village whose mayor is Ada Quist.",
                               scale=3)
        add = gr.Button("Add to my session")
        clear = gr.Button("Remove mine")
    user_md = gr.Markdown()
    session = gr.State(None, delete_callback=_drop_session)
    return {"recall_run": recall_run, "recall_plot": recall_plot, "recall_md": recall_md, "user_text": user_text,
            "user_add": add, "user_clear": clear, "user_md": user_md, "session": session}


def _pairs_section() -> dict:
    gr.Markdown("For 110 labelled sentence pairs (paraphrase, related, unrelated), cosine similarity from MiniLM and "
                "from SmolLM2's hidden states (mean over tokens or last token). AUROC says how well each separates "
                "paraphrases from unrelated pairs (1 = perfectly, 0.5 = chance), with a 95 % bootstrap interval.")
    with gr.Row():
        run = gr.Button("Compare on the labelled pairs")
        layer = gr.Slider(0, 30, value=15, step=1, label="decoder layer (view; no re-run)")
    plot = gr.Plot(label="AUROC per layer")
    box = gr.Plot(label="similarity by label")
    md = gr.Markdown()
    state = gr.State(None)
    return {"pairs_run": run, "layer": layer, "pairs_plot": plot, "pairs_box": box, "pairs_md": md, "pairs_state": state}


def _tokens_section() -> dict:
    facts_run = gr.Button("Inspect the embedding matrix of the selected model")
    facts_md = gr.Markdown()
    with gr.Row():
        token = gr.Textbox(" king", label="token (nearest neighbours by cosine)")
        n = gr.Slider(1, 50, value=10, step=1, label="neighbours")
        near_run = gr.Button("Nearest tokens")
    near_badge, near_table = badged_table(headers=["rank", "token", "id", "cosine"], interactive=False,
                                          label="nearest tokens")
    with gr.Row():
        words = gr.Textbox("king, queen, man, woman, Paris, London, Berlin, apple, banana, cherry, one, two, three",
                           label="tokens to map (comma-separated)", scale=3)
        map_run = gr.Button("Map in 2-D (PCA)")
    map_plot = gr.Plot(label="token map")
    return {"facts_run": facts_run, "facts_md": facts_md, "token": token, "neighbours": n, "near_run": near_run,
            "near_table": near_table, "near_badge": near_badge, "map_words": words, "map_run": map_run, "map_plot": map_plot}


def _accuracy_section() -> dict:
    stored = emb_accuracy.load_stored()
    note = ("No stored bench result yet: run `python bench/bench_rag.py --write`." if stored is None else
            f"Stored: {stored.provenance.source}.")
    md = gr.Markdown(note)
    plot = gr.Plot(stamp(figs.accuracy_figure(stored), stored.provenance) if stored else None,
                   label="accuracy with vs without retrieval")
    with gr.Row():
        per_group = gr.Slider(1, 5, value=2, step=1, label="questions per group for the live sample")
        run = gr.Button("Recompute live on a sample")
        stop = gr.Button("Stop", variant="stop")
    badge, table = badged_table(stored.provenance if stored else None, value=figs.accuracy_rows(stored) if stored else None,
                                interactive=False, wrap=True,
                                headers=["group", "question", "with retrieval", "ok", "without", "ok"], label="answers")
    return {"acc_md": md, "acc_plot": plot, "acc_per_group": per_group, "acc_run": run, "acc_stop": stop,
            "acc_table": table, "acc_badge": badge}


def build_embeddings_tab(ctx) -> dict:
    """Build the tab; returns its components by name (``run``, ``plot`` and ``result`` are the main ones)."""
    parts: dict = {}
    with gr.Accordion("1. Follow one question: embed, retrieve, answer", open=True):
        parts.update(_question_section(ctx))
    with gr.Accordion("2. The vector store: chunk size, recall@k, your own passages", open=False):
        parts.update(_store_section())
    with gr.Accordion("3. Sentence embeddings vs LLM hidden states", open=False):
        parts.update(_pairs_section())
    with gr.Accordion("4. Token embeddings of the selected model", open=False):
        parts.update(_tokens_section())
    with gr.Accordion("5. Accuracy with vs without retrieval", open=False):
        parts.update(_accuracy_section())
    _wire(ctx, parts)
    _register_apis()
    return parts


def _wire(ctx, p: dict) -> None:
    @ui_errors
    def follow(question, k, metric, chunk, session, progress=gr.Progress()):
        progress(0.1, desc="embedding and searching")
        chunk = int(chunk or 0) or None
        sides = emb.search_all_metrics(question, int(k), chunk, session)
        for r in sides.values():
            _notices(r.notices)
        progress(0.4, desc="answering with and without retrieval")
        result = emb.answer_question(question, "smollm2-135m-instruct", int(k), metric, chunk, session)
        _notices(result.notices)
        search_prov = next(iter(sides.values())).provenance if sides else None
        return (result, stamp(figs.retrieval_figure(sides), search_prov), _answers_md(result),
                figs.passage_rows(result.passages), result.prompt, result.provenance)

    p["run"].click(follow, [p["question"], p["k"], p["metric"], p["chunk_size"], p["session"]],
                   [p["state"], p["plot"], p["answers"], p["table"], p["prompt_box"], p["table_badge"]],
                   api_visibility="private")

    @ui_errors
    def attribute(result, progress=gr.Progress()):
        if result is None:
            raise ValueError("Retrieve and answer first.")
        progress(0.1, desc="captum feature ablation over the prompt's sentences")
        attr = emb.attribute_context(result)
        best = int(attr.passage_scores.argmax()) + 1 if len(attr.passage_scores) else 0
        return stamp(figs.attribution_figure(attr, result.passages), attr.provenance), (
            f"Blanking passage **[{best}]** lowers the answer's log-probability the most "
            f"({attr.passage_scores.max():.2f} nats; answer log-probability {attr.target_logprob:.2f} nats). "
            f"_{attr.provenance.source}_")

    p["attr_run"].click(attribute, p["state"], [p["attr_plot"], p["attr_md"]], api_name="embeddings_attribution",
                           api_visibility="private")  # not "attribute": that name is the public /attribute API

    @ui_errors
    def recall(progress=gr.Progress()):
        result = emb.recall_by_chunk_size(progress=lambda i, n, label: progress(i / n, desc=label))
        best = max(range(len(result.chunk_sizes)), key=lambda i: result.recall[i, 0])
        return stamp(figs.recall_figure(result), result.provenance), (
            f"Best recall@1: **{result.recall[best, 0]:.0%}** at chunk size "
            f"{result.chunk_sizes[best] or 'passage'} ({result.n_chunks[best]} chunks).")

    p["recall_run"].click(recall, None, [p["recall_plot"], p["recall_md"]], api_visibility="private")

    @ui_errors
    def add(text, session):
        session = session if isinstance(session, SessionPassages) else SessionPassages()
        total = session.add([line for line in (text or "").splitlines() if line.strip()])
        return session, f"This session now holds **{total}** passage(s); searches above include them (red bars).", ""

    def clear(session):
        if isinstance(session, SessionPassages):
            session.drop()
        return None, "Your passages were removed."

    p["user_add"].click(add, [p["user_text"], p["session"]], [p["session"], p["user_md"], p["user_text"]],
                        api_visibility="private")
    p["user_clear"].click(clear, p["session"], [p["session"], p["user_md"]], api_visibility="private")

    def pairs_view(result, layer):
        layer = min(int(layer), result.mean.shape[0] - 1)
        rows = []
        for method, name in (("minilm", "MiniLM"), ("mean", f"decoder mean-pooled, layer {layer}"),
                             ("last", f"decoder last token, layer {layer}")):
            value, low, high = result.interval(method, layer)
            rows.append(f"- {name}: AUROC **{value:.3f}** (95 % CI {low:.3f} to {high:.3f})")
        return (stamp(figs.pairs_figure(result, layer), result.provenance),
                stamp(figs.similarity_figure(result, layer), result.provenance), "\n".join(rows))

    @ui_errors
    def pairs(model, layer, progress=gr.Progress()):
        result = emb.compare_pairs(model, progress=lambda i, n, label: progress(i / n, desc=label))
        return (result, gr.update(maximum=result.mean.shape[0] - 1)) + pairs_view(result, layer)

    p["pairs_run"].click(pairs, [ctx.model, p["layer"]],
                         [p["pairs_state"], p["layer"], p["pairs_plot"], p["pairs_box"], p["pairs_md"]],
                         api_visibility="private")
    p["layer"].release(lambda r, layer: pairs_view(r, layer) if r is not None else (gr.update(),) * 3,
                       [p["pairs_state"], p["layer"]], [p["pairs_plot"], p["pairs_box"], p["pairs_md"]],
                       api_visibility="private")

    @ui_errors
    def facts(model):
        f = emb.embedding_facts(get_engine(model))
        tied = ("**tied**: the output layer is the same tensor (same storage) as the input embedding"
                if f.tied else "**not tied**: the output layer has its own weights"
                + (f" ({f.output_params:,} parameters)" if f.output_params else ""))
        return (f"`{f.model}`: embedding matrix {f.vocab_size:,} tokens x {f.hidden_size} dimensions = "
                f"**{f.embedding_params:,} parameters, {f.share:.1%} of all {f.total_params:,}**. It is {tied} "
                f"(config `tie_word_embeddings` = {f.config_tied}).")

    @ui_errors
    def near(model, token, n):
        r = emb.nearest_tokens(get_engine(model), token, int(n))
        _notices(r.notices)
        return figs.neighbour_rows(r), r.provenance

    @ui_errors
    def token_map(model, words):
        r = emb.token_map(get_engine(model), [w for w in (words or "").split(",")])
        _notices(r.notices)
        return stamp(figs.token_map_figure(r), r.provenance)

    p["facts_run"].click(facts, ctx.model, p["facts_md"], api_visibility="private")
    p["near_run"].click(near, [ctx.model, p["token"], p["neighbours"]], [p["near_table"], p["near_badge"]],
                        api_visibility="private")
    p["map_run"].click(token_map, [ctx.model, p["map_words"]], p["map_plot"], api_visibility="private")

    @ui_errors
    def live(n, progress=gr.Progress()):
        questions = emb_accuracy.sample_questions(int(n))
        result = emb_accuracy.evaluate(questions, "smollm2-135m-instruct", 1,
                                       progress=lambda i, total, q: progress(i / total, desc=q))
        return (f"Live sample of {len(result.rows)} questions ({result.provenance.kind}).",
                stamp(figs.accuracy_figure(result), result.provenance), figs.accuracy_rows(result), result.provenance)

    event = p["acc_run"].click(live, p["acc_per_group"], [p["acc_md"], p["acc_plot"], p["acc_table"], p["acc_badge"]],
                               api_visibility="private")
    p["acc_stop"].click(None, None, None, cancels=[event], api_visibility="private")


def _api(fn):
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None
    return wrapped


def _register_apis() -> None:
    def embed(texts: list[str], model: str = "all-minilm-l6-v2", layer: int | None = None, pooling: str = "mean") -> dict:
        """JSON API: ``{"vectors_dim", "similarity": [[cosine]]}``; layer and pooling apply to decoders."""
        return _api(lambda: emb.embed_texts(texts, model, layer, pooling).to_api())()

    def search(query: str, k: int = 5, metric: str = "cosine", documents: list[str] | None = None,
               chunk_size: int | None = None) -> dict:
        """JSON API: ``{"hits": [{"text", "score" (similarity, higher is better), "rank" (1 = best)}]}``;
        documents None = the built-in corpus, a list = an ad-hoc collection for this call."""
        return _api(lambda: emb.search(query, k, metric, documents, chunk_size).to_api())()

    def rag(question: str, model: str = "smollm2-135m-instruct", k: int = 1) -> dict:
        """JSON API: ``{"answer", "answer_without_retrieval", "passages": [{"text", "score", "rank"}]}``."""
        return _api(lambda: emb.answer_question(question, model or None, k).to_api())()

    gr.api(embed, api_name="embed")
    gr.api(search, api_name="search")
    gr.api(rag, api_name="rag")
