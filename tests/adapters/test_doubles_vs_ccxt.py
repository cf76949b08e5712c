"""The Kraken and Coinbase doubles held against the real responses CCXT captured.

``tests/doubles/captured/`` holds verbatim excerpts of ccxt's static test data (see its
README for the source and commit): a real closed Kraken market order and AssetPairs row,
and a real closed Coinbase Advanced order. Each double must serve at least every field the
real body has, with the same JSON types (Kraken's numbers are strings), and the venue
model must reproduce the captured fee arithmetic.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from doubles.coinbase import CbOrder, CoinbaseDouble, new_key_pair
from doubles.kraken import KrakenDouble, KrakenOrder, asset_pair
from rebalancer.core.fills import fill_market_order
from rebalancer.core.model import MarketRules, OrderRequest, Side
from rebalancer.core.venue import venue_model

CAPTURED = Path(__file__).resolve().parents[1] / "doubles" / "captured"


def captured(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CAPTURED / name).read_text())
    return data


def same_shape(real: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """Fields the real body has that ours lacks or types differently (None is any type)."""
    problems = []
    for key, value in real.items():
        if key not in ours:
            problems.append(f"missing {key}")
        elif value is not None and ours[key] is not None and type(value) is not type(ours[key]):
            kinds = f"real {type(value).__name__}, double {type(ours[key]).__name__}"
            problems.append(f"{key}: {kinds}")
    return problems


def test_a_kraken_double_order_has_every_real_field_as_strings_and_a_trades_list() -> None:
    double = KrakenDouble("k", "a2V5", books={"XXBTZUSD": ("60000.0", "60000.1")})
    order = KrakenOrder(
        "OABCDE-KRKN-TXID01", "cid", "XXBTZUSD", "buy", Decimal("0.1"), Decimal("60000.1"),
        Decimal("15.60003"), "fciq", 1705260547.472,
    )  # fmt: skip
    ours = double._order_json(order)
    assert same_shape(captured("kraken_closed_order.json"), ours) == []
    assert isinstance(ours["trades"], list) and ours["trades"]


def test_kraken_double_asset_pairs_have_the_real_fields_and_types() -> None:
    assert same_shape(captured("kraken_asset_pair.json"), asset_pair("XXBTZUSD")) == [
        "missing long_position_limit",
        "missing short_position_limit",
    ]  # margin position limits: not used by a spot bot


def test_the_kraken_model_reproduces_the_captured_fee() -> None:
    """Captured: buy 0.1 LTC at 71.05741 USDT, cost 7.105741, fee "0.018475" at 0.26 %
    (truncation would give 0.018474), LTCUSDT cost_decimals 6."""
    rules = MarketRules(
        "LTC/USDT", "LTC", "USDT", Decimal("1e-8"), taker_fee=Decimal("0.0026"),
        cost_step=Decimal("1e-6"),
    )  # fmt: skip
    kraken = venue_model("kraken")
    rules = kraken.market(rules)
    order = OrderRequest(
        "LTC", "LTC/USDT", Side.BUY, Decimal("0.1"), Decimal("71.05741"), Decimal("7.105741"),
        Decimal(0), "c",
    )  # fmt: skip
    fill = fill_market_order(
        order, rules, Decimal("71.05741"), Decimal("71.05741"), Decimal(0),
        {"USDT": Decimal(10)}, kraken,
    )  # fmt: skip
    assert (fill.cost, fill.fee) == (Decimal("7.105741"), Decimal("0.018475"))
    assert fill.fee_asset == "USDT"


def test_a_coinbase_double_order_has_every_real_field() -> None:
    _, public = new_key_pair()
    double = CoinbaseDouble("k", public, books={"BTC-USD": ("60000", "60000.01")})
    order = CbOrder(
        "o-1", "c-1", "BTC-USD", "SELL", {"market_market_ioc": {"base_size": "0.1"}}, 1.7e9,
        Decimal("0.1"), Decimal("6000"), Decimal("36"),
    )  # fmt: skip
    assert same_shape(captured("coinbase_closed_order.json"), double._order_json(order)) == []


def test_the_coinbase_model_reproduces_a_captured_quote_size_buy() -> None:
    """Captured (SOL-USD): quote_size "5" at 0.8 % -> filled_value 4.9603174603174603,
    total_fees 0.0396825396825397, filled_size 0.2132552648459785 at 23.26."""
    coinbase = venue_model("coinbase")
    rules = coinbase.market(
        MarketRules("SOL/USD", "SOL", "USD", Decimal("0.001"), taker_fee=Decimal("0.008"),
                    cost_step=Decimal("0.01"))
    )  # fmt: skip
    order = OrderRequest(
        "SOL", "SOL/USD", Side.BUY, Decimal("0.2"), Decimal("23.26"), Decimal("5"), Decimal(0), "c"
    )
    fill = fill_market_order(
        order, rules, Decimal("23.26"), Decimal("23.26"), Decimal(0), {"USD": Decimal(5)}, coinbase
    )
    q = Decimal("1e-16")
    assert fill.cost.quantize(q) == Decimal("4.9603174603174603")
    assert fill.fee.quantize(q) == Decimal("0.0396825396825397")
    assert fill.amount.quantize(q) == Decimal("0.2132552648459785")
