"""The CLI's error path masks secrets as the log filter does (signed URLs, URL passwords)."""

from __future__ import annotations

import ccxt
import typer
from typer.testing import CliRunner

from rebalancer.adapters.ccxt.errors import translate
from rebalancer.cli.app import user_errors
from rebalancer.cli.errors import error_text
from rebalancer.core.errors import RebalancerError, RetryLater

SIGNED = (
    "binance GET https://api.binance.com/api/v3/account?timestamp=1733300000000"
    "&recvWindow=5000&signature=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)


def run(exc: RebalancerError) -> str:
    app = typer.Typer()

    @app.command()
    def fail() -> None:
        raise exc

    app.command(name="other")(lambda: None)  # two commands: "fail" is a subcommand
    app.registered_commands[0].callback = user_errors(fail)
    result = CliRunner().invoke(app, ["fail"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    return result.output.replace("\n", "")  # the console wraps long lines


def test_a_network_error_never_prints_the_signature_of_the_signed_url() -> None:
    out = run(RetryLater(f"fetch_balance: transient failure, retry later (NetworkError: {SIGNED})"))
    assert "9f86d081884c7d659a2feaa0c55ad015" not in out
    assert "signature=***" in out and "api.binance.com" in out


def test_a_journal_url_password_in_an_error_is_masked() -> None:
    out = run(
        RebalancerError(
            "cannot open the journal at postgresql+psycopg://bot:***@db/rb?password=pw-77: "
            "connection refused"
        )
    )
    assert "pw-77" not in out and "cannot open the journal" in out and "refused" in out


def test_the_adapter_scrubs_the_signature_at_the_source_too() -> None:
    err = translate(ccxt.NetworkError(SIGNED), what="fetch_balance")
    assert "signature=***" in str(err) and "9f86d0818" not in str(err)
    assert "9f86d0818" not in error_text(RetryLater(SIGNED))
