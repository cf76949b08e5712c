"""Market rules for paper from the venue's real market list (issue 13): the shipped
snapshot, the online list cached on disk, the labelled fallback, and bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from doubles.binance import BinanceDouble
from rebalancer import bootstrap
from rebalancer.adapters.ccxt import CcxtExchange, make_client
from rebalancer.adapters.market_list import CACHE_TTL, market_list, online, shipped
from rebalancer.adapters.paper import PaperExchange
from rebalancer.config import parse_config
from rebalancer.core.errors import ConfigError, DataError, RetryLater
from rebalancer.core.fills import apply_fill
from rebalancer.core.model import OrderRequest, Side
from rebalancer.core.venue import venue_model

D = Decimal
ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT.parent / "shared" / "ccxt-fixtures" / "binance" / "binance_markets.json"


@pytest.mark.parametrize("venue", ["binance", "kraken", "coinbase"])
def test_each_venue_ships_a_snapshot_with_its_source_and_date(venue: str) -> None:
    data = shipped(venue)
    assert data["venue"] == venue and "ccxt/ccxt" in data["source"]
    datetime.strptime(data["read_on"], "%Y-%m-%d")
    assert data["markets"] and all("/" in s for s in data["markets"])


def test_the_binance_snapshot_agrees_with_the_recorded_exchange_info() -> None:
    markets = json.loads(FIXTURES.read_text())["markets"]
    rows = shipped("binance")["markets"]
    for symbol, row in rows.items():
        filters = {f["filterType"]: f for f in markets[symbol]["info"]["filters"]}
        assert D(row["amount_step"]) == D(filters["LOT_SIZE"]["stepSize"])
        assert D(row["min_amount"]) == D(filters["LOT_SIZE"]["minQty"])
        assert D(row["min_notional"]) == D(filters["NOTIONAL"]["minNotional"])
        assert D(row["cost_step"]) == D(filters["PRICE_FILTER"]["tickSize"])


def test_kraken_paper_gets_the_real_rules_and_a_labelled_fallback() -> None:
    prices = {"BTC": D(60000), "SOL": D(150)}
    found = market_list(venue_model("kraken"), "USD", prices)
    btc = found.rules["BTC"]
    assert (btc.min_amount, btc.min_notional, btc.cost_step) == (D("0.0001"), D("0.5"), D("1e-5"))
    assert btc.fee_in_quote and btc.taker_fee == D("0.0026") and btc.maker_fee == D("0.0016")
    assert found.fallback == ("SOL",)
    assert "MADE-UP fallback rules" in found.source and "SOL" in found.source
    assert found.rules["SOL"].fee_in_quote  # the venue's fee side even on fallback rules


def test_the_configs_fees_win_over_the_venue_tier() -> None:
    found = market_list(
        venue_model("kraken"), "USD", {"BTC": D(60000)}, taker_fee=D("0.004"), maker_fee=D("0.0025")
    )
    assert (found.rules["BTC"].taker_fee, found.rules["BTC"].maker_fee) == (D("0.004"), D("0.0025"))


def test_build_paper_on_kraken_fills_as_kraken(tmp_path: Path) -> None:
    config = parse_config(
        f'exchange = "kraken"\nquote = "USD"\nstate_dir = "{tmp_path}"\n'
        "[targets]\nBTC = 0.5\nUSD = 0.5\n[paper]\ninitial_balances = { USD = 1000 }\n"
    )
    runtime = bootstrap.build_paper(config)
    try:
        assert isinstance(runtime.exchange, PaperExchange)
        assert runtime.exchange.venue.name == "kraken"
        assert runtime.exchange.markets["BTC"].min_amount == D("0.0001")  # the real ordermin
        assert "kraken market rules: the shipped snapshot" in runtime.prices_note
    finally:
        runtime.close()


def test_build_paper_for_a_venue_without_a_model_names_it_and_the_fix(tmp_path: Path) -> None:
    config = parse_config(
        f'exchange = "bybit"\nstate_dir = "{tmp_path}"\n[targets]\nBTC = 0.5\nUSDT = 0.5\n'
    )
    with pytest.raises(ConfigError, match=r"exchange = 'bybit'.*binance, coinbase, kraken"):
        bootstrap.build_paper(config)


def test_the_online_list_is_cached_on_disk_and_used_offline(tmp_path: Path) -> None:
    calls: list[int] = []
    market = {
        "symbol": "BTC/USD", "base": "BTC", "quote": "USD", "spot": True, "active": True,
        "precision": {"amount": 1e-8, "price": 0.1}, "taker": 0.0026, "maker": 0.0016,
        "limits": {"amount": {"min": 0.0001}, "cost": {"min": 0.5}},
        "info": {"cost_decimals": "5"},
    }  # fmt: skip

    def load() -> tuple[dict[str, Any], int]:
        calls.append(1)
        return {"BTC/USD": market}, 4

    def offline() -> tuple[dict[str, Any], int]:
        raise RetryLater("no network")

    cache, t0 = tmp_path / "markets-kraken.json", datetime(2026, 1, 1, tzinfo=UTC)
    first = online("kraken", load, cache, t0)
    assert first is not None and first["markets"]["BTC/USD"]["min_notional"] == "0.5"
    assert online("kraken", load, cache, t0 + timedelta(hours=1)) == first and calls == [1]
    later = t0 + CACHE_TTL + timedelta(seconds=1)
    assert online("kraken", offline, cache, later) == first  # offline: the stale cache
    found = market_list(venue_model("kraken"), "USD", {"BTC": D(60000)}, listing=first)
    assert found.fallback == () and found.rules["BTC"].cost_step == D("0.00001")


def test_bnb_fees_without_a_bnb_price_name_the_asset_and_the_fix() -> None:
    venue = venue_model("binance").with_fee_currency("BNB", D("0.75"))
    paper = PaperExchange("USDT", {"USDT": D(1000), "BNB": D(1)}, venue=venue)
    paper.set_prices({"BTC": D(60000)}, datetime(2026, 1, 1, tzinfo=UTC))
    order = OrderRequest("BTC", "BTC/USDT", Side.BUY, D("0.001"), D(60000), D(60), D(0), "c")
    with pytest.raises(DataError, match=r"fees are paid in BNB but there is no BNB/USDT price"):
        paper.create_market_order(order)


def test_unknown_venue_names_the_input_and_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"exchange = 'okx': no venue model.*Set exchange"):
        venue_model("okx")


def test_fees_in_two_currencies_are_all_kept() -> None:
    """Issue 12's minor: a fill charged in BNB and in USDT kept only the first."""
    client = make_client("binance", "k", "s", rateLimit=1)
    BinanceDouble("k", "s", balances={}, books={}).mount(client)
    exchange = CcxtExchange(client, max_ticker_age=timedelta(seconds=30), max_price_jump=D(1))
    raw = {
        "id": "1", "clientOrderId": "c", "side": "buy", "status": "closed", "filled": 0.001,
        "cost": 60.0, "average": 60000.0,
        "fees": [{"cost": 0.0001, "currency": "BNB"}, {"cost": 0.02, "currency": "USDT"}],
    }  # fmt: skip
    fill = exchange._to_fill(raw, "BTC", "BTC/USDT", "c")
    assert fill.fees() == {"USDT": D("0.02"), "BNB": D("0.0001")}
    after = apply_fill({"USDT": D(100), "BNB": D(1)}, fill, "USDT")
    assert after == {"USDT": D("39.98"), "BNB": D("0.9999"), "BTC": D("0.001")}


def test_the_kraken_case_on_paper_places_every_buy(tmp_path: Path) -> None:
    """Issue 13's case on paper with exchange = "kraken": 0.05 BTC, 0 USD, targets BTC 0.5
    / ETH 0.3 / SOL 0.2 / USD 0; two cycles place every buy and leave no cash idle."""
    config = parse_config(
        f'exchange = "kraken"\nquote = "USD"\nstate_dir = "{tmp_path}"\n'
        "[targets]\nBTC = 0.5\nETH = 0.3\nSOL = 0.2\nUSD = 0\n"
        "[paper]\ninitial_balances = { BTC = 0.05 }\n"
    )
    runtime = bootstrap.build_paper(config)
    try:
        reports = [runtime.cycle(force=True) for _ in range(2)]
        assert [f for r in reports for f in r.failed] == []
        assert {f.asset for f in reports[0].fills if f.side is Side.BUY} == {"ETH", "SOL"}
        assert all(f.fee_asset == "USD" for r in reports for f in r.fills)
        exchange = runtime.exchange
        assert isinstance(exchange, PaperExchange)
        assert D(0) <= exchange.balances["USD"] < D(10)
    finally:
        runtime.close()
