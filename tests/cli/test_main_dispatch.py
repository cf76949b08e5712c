"""`main()` builds only the command it runs (start-up time, issue 14): the same command,
options, output and errors as the whole app; the whole app for --help, --version and typos."""

from __future__ import annotations

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from rebalancer.cli.app import app, only_the_command

runner = CliRunner()


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["config", "check"], ["config"]),
        (["markets", "--json"], ["markets"]),
        (["data", "download"], ["data"]),
    ],
)
def test_only_the_named_command_is_built(argv: list[str], names: list[str]) -> None:
    one = only_the_command(argv)
    assert one is not app
    group = get_command(one)
    assert sorted(group.commands) == names  # type: ignore[attr-defined]
    assert len(get_command(app).commands) > 20  # type: ignore[attr-defined]


@pytest.mark.parametrize("argv", [[], ["--help"], ["--version"], ["statu"], ["-c", "x"]])
def test_help_version_and_typos_get_the_whole_app(argv: list[str]) -> None:
    assert only_the_command(argv) is app


@pytest.mark.parametrize(
    "argv",
    [["markets", "--help"], ["config", "--help"], ["config", "check", "--help"],
     ["status", "--bogus"], ["--version"]],
)  # fmt: skip
def test_the_one_command_app_answers_as_the_whole_app(argv: list[str]) -> None:
    whole = runner.invoke(app, argv, env={"COLUMNS": "120"})
    one = runner.invoke(only_the_command(argv), argv, env={"COLUMNS": "120"})
    assert (one.exit_code, one.output) == (whole.exit_code, whole.output)
