"""Binance + Kraken as one portfolio: the real ccxt.binance and ccxt.kraken over their doubles."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from doubles.binance import BinanceDouble
from doubles.kraken import KrakenDouble
from rebalancer.adapters.ccxt import CcxtExchange, make_client
from rebalancer.adapters.multi import MultiAccountExchange
from rebalancer.adapters.notify import MemoryNotifier
from rebalancer.adapters.state_file import MemoryJournal
from rebalancer.core.errors import InsufficientFunds
from rebalancer.core.model import Fill, OrderRequest, Side
from rebalancer.core.planner import PlanPolicy, plan
from rebalancer.core.strategy import Strategy
from rebalancer.core.triggers import Threshold
from rebalancer.service import run_cycle

B_KEY, B_SECRET = "multi-binance-key-01", "multi-binance-secret-01"
K_KEY = "multi-kraken-key-01"
K_SECRET = base64.b64encode(b"multi-kraken-secret-bytes").decode()
B_BOOKS = {
    "BTCUSDT": ("60000.00", "60000.01"),
    "ETHUSDT": ("3000.00", "3000.01"),
    "SOLUSDT": ("150.00", "150.01"),
    "ADAUSDT": ("0.5000", "0.5001"),
    "LTCUSDT": ("80.00", "80.01"),
}
K_BOOKS = {"XBTUSDT": ("60000.0", "60000.1"), "ETHUSDT": ("3000.00", "3000.01")}
POLICY = PlanPolicy(min_trade=Decimal(10), slippage=Decimal("0.002"))


def ccxt_exchange(client: Any) -> CcxtExchange:
    return CcxtExchange(
        client,
        max_ticker_age=timedelta(seconds=30),
        max_price_jump=Decimal("0.2"),
        sleep=lambda _s: None,
    )


def build(
    binance: dict[str, str], kraken: dict[str, str]
) -> tuple[BinanceDouble, KrakenDouble, MultiAccountExchange]:
    b_client = make_client("binance", B_KEY, B_SECRET, rateLimit=1)
    b = BinanceDouble(B_KEY, B_SECRET, balances=binance, books=B_BOOKS).mount(b_client)
    k_client = make_client("kraken", K_KEY, K_SECRET, rateLimit=1)
    k = KrakenDouble(K_KEY, K_SECRET, balances=kraken, books=K_BOOKS).mount(k_client)
    multi = MultiAccountExchange(
        {"binance": ccxt_exchange(b_client), "kraken": ccxt_exchange(k_client)}
    )
    return b, k, multi


def send(multi: MultiAccountExchange, orders: tuple[OrderRequest, ...], tag: str) -> list[Fill]:
    return [
        multi.create_market_order(replace(o, client_order_id=f"rb{tag}{i}"))
        for i, o in enumerate(orders)
    ]


def test_snapshot_adds_the_accounts_up() -> None:
    _, _, multi = build({"USDT": "100", "BTC": "0.03"}, {"USDT": "950", "XXBT": "0.01"})
    snap = multi.snapshot(["BTC", "ETH", "SOL"], "USDT")
    assert snap.balances == {
        "BTC": Decimal("0.04"),
        "ETH": 0,
        "SOL": 0,
        "USDT": Decimal("1050"),
    }
    assert snap.prices["BTC"] == Decimal("60000.01")  # binance, listed first: its last trade
    assert snap.markets["SOL"].symbol == "SOL/USDT"  # only binance lists SOL/USDT
    assert multi.holdings()["kraken"] == {
        "BTC": Decimal("0.01"),
        "ETH": 0,
        "SOL": 0,
        "USDT": Decimal("950"),
    }
    assert set(multi.rules["kraken"]) == {"BTC", "ETH"}  # no SOL/USDT on kraken


def test_request_count_per_account_is_constant_in_the_number_of_assets() -> None:
    counts = []
    for assets in (["BTC"], ["BTC", "ETH", "SOL", "ADA", "LTC"]):
        b, k, multi = build({"USDT": "100"}, {"USDT": "100"})
        multi.snapshot(assets, "USDT")
        multi.snapshot(assets, "USDT")  # a second cycle: markets are cached
        counts.append((dict(b.calls), dict(k.calls)))
    assert counts[0] == counts[1]
    binance, kraken = counts[0]
    assert binance == {
        ("GET", "/api/v3/exchangeInfo"): 1,
        ("GET", "/api/v3/account"): 2,
        ("GET", "/api/v3/ticker/24hr"): 2,
    }
    assert kraken == {
        ("GET", "/0/public/Assets"): 1,
        ("GET", "/0/public/AssetPairs"): 1,
        ("POST", "/0/private/BalanceEx"): 2,
        ("GET", "/0/public/Ticker"): 2,
    }


def test_one_rebalance_across_binance_and_kraken_without_transfers() -> None:
    b, k, multi = build({"USDT": "50", "BTC": "0.03"}, {"USDT": "950"})
    targets = {
        "BTC": Decimal("0.3"),
        "ETH": Decimal("0.3"),
        "SOL": Decimal("0.3"),
        "USDT": Decimal("0.1"),
    }
    assets = ["BTC", "ETH", "SOL"]
    first = plan(multi.snapshot(assets, "USDT"), targets, POLICY)
    assert [o.asset for o in first.sells] == ["BTC"]
    sells = send(multi, first.sells, "s")
    buys_plan = plan(multi.snapshot(assets, "USDT"), targets, POLICY, phase="buys")
    buys = send(multi, buys_plan.buys, "b")
    routes = {(p.order.side.value, p.order.asset): p.account for p in multi.routes}
    assert routes == {
        ("sell", "BTC"): "binance",  # binance holds the BTC
        ("buy", "ETH"): "kraken",  # kraken can pay and lists fewer assets
        ("buy", "SOL"): "binance",  # only binance lists SOL/USDT
    }
    assert len(multi.routes) == 3 and all(f.amount > 0 for f in sells + buys)
    cids = {f.asset: f.client_order_id for f in buys}
    assert [r.params["newClientOrderId"] for r in b.placed()] == ["rbs0", cids["SOL"]]
    assert [r.params["cl_ord_id"] for r in k.placed()] == [cids["ETH"]]
    final = multi.snapshot(assets, "USDT")
    total = sum(final.amount(a) * final.price(a) for a in targets)
    for asset, target in targets.items():
        weight = final.amount(asset) * final.price(asset) / total
        assert abs(weight - target) < Decimal("0.02"), (asset, weight)
    assert multi.suggestions() == []
    # each account spent only its own cash: nothing moved between them
    assert b.balances["USDT"] >= 0 and k.balances["USDT"] >= 0


def test_a_buy_short_of_cash_where_it_trades_suggests_a_transfer() -> None:
    _, k, multi = build({"USDT": "100"}, {"USDT": "900"})
    snap = multi.snapshot(["SOL"], "USDT")
    price = snap.buy_price("SOL")
    amount = Decimal("4")  # 600 USDT of SOL; only binance lists SOL/USDT, with 100 USDT
    order = OrderRequest("SOL", "SOL/USDT", Side.BUY, amount, price, amount * price, ZERO_FEE)
    fill = multi.create_market_order(replace(order, client_order_id="rbb0"))
    assert [p.account for p in multi.routes] == ["binance"]
    assert fill.cost <= Decimal("100")  # what binance could pay, nothing more
    assert k.placed() == []
    [text] = multi.suggestions()
    assert text.startswith("kraken holds 90 % of the USDT but binance needs it for SOL buys")
    assert "move " in text and "USDT from kraken to binance" in text
    assert k.balances["USDT"] == Decimal("900")  # never moved by the bot


ZERO_FEE = Decimal(0)


def test_a_sell_larger_than_any_account_is_split_and_found_again_as_one_fill() -> None:
    b, k, multi = build({"USDT": "0", "BTC": "0.03"}, {"USDT": "0", "XXBT": "0.02"})
    snap = multi.snapshot(["BTC"], "USDT")
    price = snap.sell_price("BTC")
    amount = Decimal("0.045")
    order = OrderRequest(
        "BTC", "BTC/USDT", Side.SELL, amount, price, amount * price, ZERO_FEE, "rbs0"
    )
    fill = multi.create_market_order(order)
    pieces = [(p.account, p.order.amount) for p in multi.routes]
    assert pieces == [("binance", Decimal("0.03")), ("kraken", Decimal("0.015"))]
    assert fill.amount == Decimal("0.045")
    assert fill.fee_asset == "USDT"
    assert b.placed()[0].params["newClientOrderId"] == k.placed()[0].params["cl_ord_id"] == "rbs0"
    found = multi.fetch_order("rbs0", "BTC/USDT")
    assert found is not None
    assert (found.amount, found.cost, found.fee) == (fill.amount, fill.cost, fill.fee)
    assert multi.fetch_order("rbs9", "BTC/USDT") is None


def test_a_piece_below_an_accounts_minimum_is_left_out() -> None:
    _, k, multi = build({"USDT": "0", "BTC": "0.03"}, {"USDT": "0", "XXBT": "0.02"})
    snap = multi.snapshot(["BTC"], "USDT")
    price = snap.sell_price("BTC")
    amount = Decimal("0.03001")  # the 0.00001 left for kraken is below its ordermin 0.00005
    order = OrderRequest(
        "BTC", "BTC/USDT", Side.SELL, amount, price, amount * price, ZERO_FEE, "rbs0"
    )
    fill = multi.create_market_order(order)
    assert [p.account for p in multi.routes] == ["binance"]
    assert fill.amount == Decimal("0.03") and k.placed() == []


def test_a_buy_nobody_can_fund_is_skipped_with_the_suggestion() -> None:
    _, _, multi = build({"USDT": "0"}, {"USDT": "900"})
    snap = multi.snapshot(["SOL"], "USDT")
    price = snap.buy_price("SOL")
    order = OrderRequest(
        "SOL", "SOL/USDT", Side.BUY, Decimal(2), price, 2 * price, ZERO_FEE, "rbb0"
    )
    with pytest.raises(InsufficientFunds, match="suggested: kraken holds 100 % of the USDT"):
        multi.create_market_order(order)
    assert multi.routes == []


def test_the_service_runs_one_cycle_over_both_accounts() -> None:
    b, k, multi = build({"USDT": "50", "BTC": "0.03"}, {"USDT": "950"})
    targets = {
        "BTC": Decimal("0.3"),
        "ETH": Decimal("0.3"),
        "SOL": Decimal("0.3"),
        "USDT": Decimal("0.1"),
    }
    strategy = Strategy("USDT", targets, Threshold(Decimal("0.05")), POLICY)
    journal = MemoryJournal()
    at = datetime(2026, 3, 1, 12, tzinfo=UTC)
    report = run_cycle(multi, journal, MemoryNotifier(), strategy, at)
    assert report.decision.fire and not report.failed and not report.stopped
    assert sorted((f.side.value, f.asset) for f in report.fills) == [
        ("buy", "ETH"),
        ("buy", "SOL"),
        ("sell", "BTC"),
    ]
    assert report.drift_after is not None
    assert all(abs(a.drift) < Decimal("0.02") for a in report.drift_after.assets)
    assert (len(b.placed()), len(k.placed())) == (2, 1)
    # the next cycle reconciles nothing, sees the portfolio in band and trades nothing
    again = run_cycle(multi, journal, MemoryNotifier(), strategy, at + timedelta(hours=4))
    assert not again.decision.fire and again.fills == []
    assert (len(b.placed()), len(k.placed())) == (2, 1)


def short_of_cash_cycle() -> tuple[KrakenDouble, MultiAccountExchange, Strategy]:
    """SOL trades only on binance, whose 100 USDT cannot pay for the SOL the targets want."""
    _, k, multi = build({"USDT": "100"}, {"USDT": "900"})
    targets = {"SOL": Decimal("0.5"), "USDT": Decimal("0.5")}
    return k, multi, Strategy("USDT", targets, Threshold(Decimal("0.05")), POLICY)


def test_transfer_suggestions_reach_the_cycle_report_and_the_notifier() -> None:
    k, multi, strategy = short_of_cash_cycle()
    notifier = MemoryNotifier()
    at = datetime(2026, 3, 1, 12, tzinfo=UTC)
    report = run_cycle(multi, MemoryJournal(), notifier, strategy, at)
    assert report.fills and report.fills[0].asset == "SOL"
    [text] = report.suggestions  # kept although the final snapshot cleared the exchange's
    assert text.startswith("kraken holds 90 % of the USDT but binance needs it for SOL buys")
    assert report.summary()["suggestions"] == [text]
    [event] = [e for e in notifier.events if e.kind == "transfer"]
    assert text in event.body and event.data["suggestions"] == [text]
    assert k.balances["USDT"] == Decimal("900")  # never moved by the bot


def test_the_rebalance_command_prints_the_suggested_transfers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    from typer.testing import CliRunner

    from rebalancer import bootstrap
    from rebalancer.adapters.clock import ManualClock
    from rebalancer.bootstrap import Runtime
    from rebalancer.cli import app as cli

    def runtime() -> Runtime:
        _, multi, strategy = short_of_cash_cycle()
        clock = ManualClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
        return Runtime(
            "live", strategy, multi, MemoryJournal(), MemoryNotifier(), clock, "2 accounts"
        )

    monkeypatch.setattr(bootstrap, "build", lambda *a, **k: runtime())  # the command's import
    runner = CliRunner()
    out = runner.invoke(cli.app, ["rebalance"])
    assert out.exit_code == 0, out.output
    assert "suggested transfer (never made by the bot): kraken holds 90 % of the USDT" in (
        " ".join(out.output.split())
    )
    data = json.loads(runner.invoke(cli.app, ["rebalance", "--json"]).output)
    assert data["suggestions"][0].startswith("kraken holds 90 % of the USDT")


def test_an_exchange_without_suggestions_reports_none() -> None:
    from rebalancer.service import transfer_suggestions

    _, multi, _ = short_of_cash_cycle()
    assert transfer_suggestions(multi) == []
    assert transfer_suggestions(multi.accounts["binance"]) == []
