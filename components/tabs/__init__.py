"""One package per tab: ``<key>/__init__.py`` (its :class:`components.registry.TabSpec`), ``tab.py`` (layout
and thin handlers) and ``figures.py`` (result -> plotly figures, no torch)."""
