"""The engine of LLM Explorer: tensors in, plain results (numpy, frozen dataclasses) out.

Nothing here imports gradio or plotly. One package per lens (``explorer.tokens``, ``explorer.attention``,
``explorer.kv_cache``, ``explorer.decoding``, ``explorer.quantization``, ``explorer.lora``,
``explorer.hallucination``), each re-exporting its ``run`` (``from explorer import tokens; tokens.run("text")``);
``explorer.core`` holds the shared engine and limits. Each package's docstring says which file a change touches.
"""
