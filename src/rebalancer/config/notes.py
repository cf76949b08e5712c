"""What ``config check`` says beyond "valid": defaults that matter and values that are allowed
but implausible. Each note names the field, the value and what to do; none is an error."""

from __future__ import annotations

from decimal import Decimal

from rebalancer.config.assets import AssetFinding, check_assets, listing
from rebalancer.config.settings import Settings

# the highest taker/maker fee a spot exchange charges at its lowest tier is about 0.6 %
PLAUSIBLE_FEE = Decimal("0.01")


def defaults_that_matter(settings: Settings) -> list[str]:
    """Keys left out whose default decides where or what the bot trades."""
    given = settings.model_fields_set
    notes = []
    if "exchange" not in given:
        notes.append(
            f'exchange is not set: the default "{settings.exchange}" is used '
            '(write exchange = "kraken" or "coinbase" for another venue)'
        )
    if "quote" not in given:
        notes.append(
            f'quote is not set: the default "{settings.quote}" is the cash leg '
            '(write quote = "USD" for Kraken or Coinbase dollars)'
        )
    return notes


def implausible(settings: Settings) -> list[str]:
    """Values the schema allows that are almost surely a slip (a percent written as 0.1)."""
    warnings = []
    fees = settings.fees
    for name in ("taker", "maker"):
        rate = getattr(fees, name)
        if name in fees.model_fields_set and rate is not None and rate > PLAUSIBLE_FEE:
            percent = (rate * 100).normalize()
            warnings.append(
                f"fees.{name} = {rate} is {percent:f} % per trade; exchanges charge about "
                f"0.1 %-0.6 %: if you meant {rate} %, write {(rate / 100).normalize():f}"
            )
    return warnings


def asset_findings(settings: Settings) -> tuple[str, list[AssetFinding]]:
    """How the target assets were checked ("checked against <market list>", "not checked")
    and what the list says of those it does not show (see :mod:`rebalancer.config.assets`)."""
    found = listing(settings.exchange, settings.quote, settings.state_dir)
    where = f"checked against {found.where}" if found is not None else "not checked"
    return where, check_assets(settings.targets, settings.quote, settings.exchange, found)
