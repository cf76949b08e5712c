"""``rebalancer init``: write a commented config from a few answers, validated first.

Each choice comes from a flag or, when the flag is missing and the terminal is interactive,
a question. The text is parsed with the same validator every command uses before a byte is
written; an existing file is never overwritten without ``--force``. Paper mode always: live
is a deliberate edit (``mode = "live"``) plus ``--live`` on the command line.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Literal

import typer

from rebalancer.core.errors import ConfigError

TriggerKind = Literal["threshold", "calendar", "hybrid"]
DEFAULT_TARGETS = "BTC=0.4,ETH=0.3,SOL=0.2,USDT=0.1"


@dataclass(frozen=True)
class Answers:
    """What the user chose; weights as exact decimals (fractions of 1)."""

    exchange: str
    quote: str
    targets: dict[str, Decimal]
    trigger: TriggerKind
    band_abs: Decimal
    every: str


def parse_targets(text: str, quote: str) -> dict[str, Decimal]:
    """``"BTC=0.4,ETH=0.3,USDT=0.3"`` (or percents ``BTC=40,...``) -> asset -> weight.

    A weight above 1 means they are percents. The quote may be left out: it then gets the
    remainder (the cash kept)."""
    weights: dict[str, Decimal] = {}
    for part in text.replace(" ", "").split(","):
        asset, sep, value = part.partition("=")
        if not sep or not asset:
            raise ConfigError(f"--targets: write ASSET=WEIGHT pairs such as {DEFAULT_TARGETS}")
        try:
            weights[asset.upper()] = Decimal(value)
        except InvalidOperation:
            raise ConfigError(f"--targets: {asset}'s weight {value!r} is not a number") from None
    if any(w > 1 for w in weights.values()):  # written as percents
        weights = {a: w / 100 for a, w in weights.items()}
    rest = Decimal(1) - sum(weights.values(), Decimal(0))
    if quote.upper() not in weights and rest >= 0:
        weights[quote.upper()] = rest
    return weights


def render(a: Answers) -> str:
    """The config text: the chosen values, each with one line of explanation."""
    targets = "\n".join(f"{asset} = {weight.normalize():f}" for asset, weight in a.targets.items())
    schedule = f'every = "{a.every}"\n' if a.trigger != "threshold" else ""
    band = f"band_abs = {a.band_abs.normalize():f}\n" if a.trigger != "calendar" else ""
    return f"""# rebalancer config, written by `rebalancer init`. Every key is explained in
# config.example.toml; `rebalancer config check` validates this file.

# "paper" trades a simulated account on real prices; live needs mode = "live" here and
# --live on the command line. Exchange keys go in the environment or .env, never here.
mode = "paper"
exchange = "{a.exchange}"
# The cash leg: the quote's weight below is the cash you keep.
quote = "{a.quote}"

# Target weights, summing to 1.
[targets]
{targets}

# When to rebalance: "threshold" (a weight leaves its band), "calendar" (on a schedule) or
# "hybrid" (look on the schedule, act only when out of band).
[trigger]
kind = "{a.trigger}"
{band}{schedule}
[rebalance]
# Legs smaller than this (quote units) are not traded.
min_trade = 10

[paper]
# The simulated account's starting balances (quote units of cash to begin with).
initial_balances = {{ {a.quote} = 10000 }}
"""


def _ask(value: str | None, question: str, default: str) -> str:
    if value is not None:
        return value
    if not sys.stdin.isatty():
        return default
    answer: str = typer.prompt(question, default=default)
    return answer


def init_command(
    path: Annotated[Path, typer.Argument(help="Where to write it.")] = Path("rebalancer.toml"),
    exchange: Annotated[
        str | None, typer.Option(help="binance, kraken or coinbase (asked when missing).")
    ] = None,
    quote: Annotated[str | None, typer.Option(help="The cash leg, e.g. USDT or USD.")] = None,
    targets: Annotated[
        str | None,
        typer.Option(help=f"ASSET=WEIGHT pairs, e.g. {DEFAULT_TARGETS} (quote gets the rest)."),
    ] = None,
    trigger: Annotated[
        str | None, typer.Option(help="threshold, calendar or hybrid.")
    ] = None,
    band: Annotated[
        str | None, typer.Option(help="band_abs in weight points, e.g. 0.05 for 5 points.")
    ] = None,
    every: Annotated[
        str | None, typer.Option(help='The schedule of calendar/hybrid, e.g. "1d", "1w".')
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented config from a few answers (asked for any flag left out when the
    terminal is interactive, else the defaults), validated before it is written.

    Example: `rebalancer init --exchange kraken --quote USD --targets BTC=0.6,ETH=0.3`
    """
    if path.exists() and not force:
        raise ConfigError(f"{path} exists: pass --force to overwrite it, or name another file")
    from rebalancer.config import parse_config  # pydantic: only when the command runs

    answers = _answers(exchange, quote, targets, trigger, band, every)
    text = render(answers)
    parse_config(text, str(path), base_dir=path.parent)  # every rule, before writing
    path.write_text(text)
    typer.echo(f"wrote {path}; next: rebalancer status -c {path}")


def _answers(
    exchange: str | None,
    quote: str | None,
    targets: str | None,
    trigger: str | None,
    band: str | None,
    every: str | None,
) -> Answers:
    ex = _ask(exchange, "Exchange (binance, kraken, coinbase)", "binance").strip().lower()
    q = _ask(quote, "Quote (the cash leg)", "USD" if ex != "binance" else "USDT").strip().upper()
    default_targets = DEFAULT_TARGETS.replace("USDT", q)
    weights = parse_targets(_ask(targets, "Targets (ASSET=WEIGHT,...)", default_targets), q)
    kind = _ask(trigger, "Trigger (threshold, calendar, hybrid)", "threshold").strip().lower()
    if kind not in ("threshold", "calendar", "hybrid"):
        raise ConfigError(f"--trigger: must be threshold, calendar or hybrid; found {kind!r}")
    band_text = _ask(band if kind != "calendar" else "0.05", "Band (weight points)", "0.05")
    try:
        band_abs = Decimal(band_text)
    except InvalidOperation:
        raise ConfigError(f"--band: must be a number such as 0.05; found {band_text!r}") from None
    schedule = _ask(every if kind != "threshold" else "1d", "Schedule (e.g. 1d, 1w)", "1d")
    return Answers(ex, q, weights, kind, band_abs, schedule)  # type: ignore[arg-type]
