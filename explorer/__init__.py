"""The engine of LLM Explorer: tensors in, plain results (numpy, frozen dataclasses) out.

Nothing here imports gradio or plotly. Each lens is a module (``explorer.tokens``, ...)
with a ``run(...)`` function, e.g. ``from explorer import tokens; tokens.run("text")``.
"""
