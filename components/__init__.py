"""The UI: one module per tab (``<tab>_tab.py``) and plotly figures under ``figures/``."""
