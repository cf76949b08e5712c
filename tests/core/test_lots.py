"""Tax lots: FIFO / LIFO / HIFO / specific identification, fees, gains per year."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from rebalancer.core.lots import (
    LotBook,
    TimedFill,
    add_fill,
    gains_by_year,
    realise,
    unrealised,
)
from rebalancer.core.model import Fill, Side

D = Decimal


def _at(year: int, month: int = 1, day: int = 1) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def _fill(side: Side, amount: str, price: str, cid: str, fee: str = "0", fee_asset: str = "USDT"):  # type: ignore[no-untyped-def]
    a, p = D(amount), D(price)
    return Fill(cid, "BTC", "BTC/USDT", side, a, p, a * p, D(fee), fee_asset)


BUYS = [
    TimedFill(_at(2024, 1, 1), _fill(Side.BUY, "1", "100", "b1"), "USDT"),
    TimedFill(_at(2024, 2, 1), _fill(Side.BUY, "1", "300", "b2"), "USDT"),
    TimedFill(_at(2024, 3, 1), _fill(Side.BUY, "1", "200", "b3"), "USDT"),
]
SELL = TimedFill(_at(2025, 6, 1), _fill(Side.SELL, "1.5", "250", "s1"), "USDT")


def test_fifo_lifo_hifo_hand_checked() -> None:
    # proceeds 375 for 1.5 BTC
    _, fifo = realise([*BUYS, SELL], "fifo")
    assert [(d.lot_id, d.amount, d.cost) for d in fifo] == [("b1", 1, 100), ("b2", D("0.5"), 150)]
    assert sum(d.gain for d in fifo) == D(375) - D(250)
    _, lifo = realise([*BUYS, SELL], "lifo")
    assert [(d.lot_id, d.amount) for d in lifo] == [("b3", 1), ("b2", D("0.5"))]
    assert sum(d.gain for d in lifo) == D(375) - D(350)
    book, hifo = realise([*BUYS, SELL], "hifo")
    assert [(d.lot_id, d.amount) for d in hifo] == [("b2", 1), ("b3", D("0.5"))]
    assert sum(d.gain for d in hifo) == D(375) - D(400)  # a harvested loss
    assert book.held("BTC") == D("1.5") and book.basis("BTC") == D(100) + D(100)


def test_specific_identification() -> None:
    sell = TimedFill(SELL.at, SELL.fill, "USDT", lot_ids=("b3", "b1"))
    _, out = realise([*BUYS, sell], "specific")
    assert [(d.lot_id, d.amount) for d in out] == [("b3", 1), ("b1", D("0.5"))]


def test_fees_enter_the_basis_and_the_proceeds() -> None:
    buy = TimedFill(_at(2024), _fill(Side.BUY, "2", "100", "b", fee="1"), "USDT")
    base_fee_buy = TimedFill(
        _at(2024, 2), _fill(Side.BUY, "1", "100", "c", fee="0.01", fee_asset="BTC"), "USDT"
    )
    book, _ = realise([buy, base_fee_buy], "fifo")
    lots = book.open_lots("BTC")
    assert (lots[0].amount, lots[0].cost) == (D(2), D(201))
    assert (lots[1].amount, lots[1].cost) == (D("0.99"), D(100))
    sell = TimedFill(_at(2024, 3), _fill(Side.SELL, "1", "150", "s", fee="0.5"), "USDT")
    _, (d,) = add_fill(book, sell, "fifo")
    assert (d.proceeds, d.cost, d.gain) == (D("149.5"), D("100.5"), D(49))


def test_selling_more_than_the_lots_is_flagged_unknown() -> None:
    _, out = realise(
        [BUYS[0], TimedFill(_at(2024, 5), _fill(Side.SELL, "2", "100", "s"), "USDT")], "fifo"
    )
    assert [(d.lot_id, d.amount, d.cost) for d in out] == [("b1", 1, 100), ("unknown", 1, 0)]


def test_gains_by_year_and_unrealised() -> None:
    early = TimedFill(_at(2024, 12, 1), _fill(Side.SELL, "0.5", "400", "s0"), "USDT")
    book, out = realise([*BUYS, early, SELL], "fifo")
    years = gains_by_year(out)
    assert years[2024].net == D(200) - D(50)
    assert years[2025].proceeds == D(375)
    assert years[2025].gains + years[2025].losses == years[2025].net
    assert unrealised(book, {"BTC": D(200)})["BTC"] == book.held("BTC") * 200 - book.basis("BTC")


@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(1, 1000), st.integers(1, 10_000)),
        min_size=1,
        max_size=30,
    )
)
def test_hifo_never_realises_more_than_fifo_and_basis_is_conserved(
    trades: list[tuple[bool, int, int]],
) -> None:
    fills: list[TimedFill] = []
    held = D(0)
    for i, (buy, qty, price) in enumerate(trades):
        amount = D(qty) / 100
        if not buy:
            amount = min(amount, held)
            if amount == 0:
                continue
        held += amount if buy else -amount
        side = Side.BUY if buy else Side.SELL
        fills.append(
            TimedFill(
                _at(2024, 1, 1).replace(minute=i % 60, hour=i // 60),
                _fill(side, str(amount), str(price), f"o{i}"),
                "USDT",
            )
        )
    results = {m: realise(fills, m) for m in ("fifo", "lifo", "hifo")}
    bought = sum((tf.fill.cost for tf in fills if tf.fill.side is Side.BUY), D(0))
    for book, out in results.values():
        assert book.held("BTC") == held
        # every unit of cost is either still open or was disposed of
        assert book.basis("BTC") + sum((d.cost for d in out), D(0)) == bought
        assert all(d.lot_id != "unknown" for d in out)
    # per sell HIFO minimises the gain given the same open lots; overall, on the first sell
    first_sell = next((i for i, tf in enumerate(fills) if tf.fill.side is Side.SELL), None)
    if first_sell is not None:
        upto = fills[: first_sell + 1]
        g = {m: sum((d.gain for d in realise(upto, m)[1]), D(0)) for m in ("fifo", "lifo", "hifo")}
        assert g["hifo"] <= g["fifo"] and g["hifo"] <= g["lifo"]


def test_empty_book() -> None:
    assert LotBook().held("BTC") == 0
    assert gains_by_year([]) == {}
