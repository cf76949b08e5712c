"""Messages holding config, user or exchange text print as written: Rich markup never
swallows a bracketed name such as ``[targets]`` or ``[optimise]``."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from rebalancer.cli.app import app
from rebalancer.cli.render import esc, print_decision
from rebalancer.core.triggers import Decision

runner = CliRunner()


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_a_config_error_names_the_table_it_asks_for(tmp_path: Path) -> None:
    path = tmp_path / "rebalancer.toml"
    path.write_text('mode = "paper"\n')
    result = runner.invoke(app, ["config", "check", "-c", str(path)])
    assert result.exit_code == 2
    assert "Fix: add a [targets] table" in _flat(result.output)


def test_reasons_and_notes_keep_their_brackets() -> None:
    console = Console(record=True, width=200)
    print_decision(console, Decision(True, "calendar due ([optimise] method is off)"))
    console.print(f"[dim]targets: {esc('applied: config ([optimise] method is off)')}[/dim]")
    console.print(f"[bold red]stopped:[/bold red] {esc('[risk] max_drawdown [/bold] hit')}")
    out = console.export_text()
    assert "calendar due ([optimise] method is off)" in out
    assert "applied: config ([optimise] method is off)" in out
    assert "stopped: [risk] max_drawdown [/bold] hit" in out
