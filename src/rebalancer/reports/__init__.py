"""HTML reports and charts of backtests and research (Jinja2 templates, matplotlib)."""
