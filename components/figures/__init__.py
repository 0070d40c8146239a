"""Result -> plotly Figure functions, one module per tab. No torch here."""
