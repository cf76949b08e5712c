"""The dashboard, its JSON API and the paper-trading report: thin skins over the journal.

``view`` turns journal rows into numbers (weights vs bands, equity vs buy-and-hold, drift),
``app`` serves them (FastAPI, token required, read-only unless control is enabled),
``page`` is the single self-contained HTML page, ``report`` writes the report file.
"""
