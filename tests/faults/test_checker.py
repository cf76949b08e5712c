"""The matrix's invariant checker catches what it claims to (so a green matrix means something)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from faults.harness import KEY, T0, World, check_invariants, make_world
from rebalancer.core.model import OrderRequest, Side
from rebalancer.logs import reset_logging


def violations(world: World) -> list[str]:
    try:
        return check_invariants(world, "checker", record=False)
    finally:
        reset_logging()
        world.close()


def sell_btc(cid: str) -> OrderRequest:
    amount = Decimal("0.001")
    return OrderRequest(
        "BTC", "BTC/USDT", Side.SELL, amount, Decimal(60000), Decimal(60), Decimal(0), cid
    )


def test_a_clean_world_has_no_violation(tmp_path: Path) -> None:
    assert violations(make_world(tmp_path)) == []


def test_an_order_without_a_journaled_intent_is_caught(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    world.exchange.create_market_order(sell_btc("rb-no-intent"))
    found = violations(world)
    assert any("without a journaled intent" in v for v in found)
    assert any("unresolved intents were []" in v for v in found)  # caught on the wire too
    assert any("start + journaled fills != ledger" in v for v in found)


def test_an_order_sent_while_halted_or_left_unresolved_is_caught(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    world.journal.record_halt("test halt", T0)
    world.journal.record_intent(sell_btc("rb-halted"), T0)
    world.exchange.create_market_order(sell_btc("rb-halted"))
    found = violations(world)
    assert any("sent while halted" in v for v in found)
    assert any("intent rb-halted: 'intent'" in v for v in found)


def test_a_doubled_order_a_filter_rejection_and_a_leaked_secret_are_caught(
    tmp_path: Path,
) -> None:
    world = make_world(tmp_path)
    for _ in range(2):
        world.exchange.client.create_order(
            "BTC/USDT", "market", "sell", 0.001, None, {"newClientOrderId": "rb-twice"}
        )
    try:
        world.exchange.client.create_order(
            "BTC/USDT", "market", "sell", 0.00001, None, {"newClientOrderId": "rb-tiny"}
        )
    except Exception as exc:  # NOTIONAL: 0.6 USDT < 5
        world.outputs.append(str(exc))
    world.outputs.append(f"oops {KEY}")
    found = violations(world)
    assert any("rb-twice: 2 accepted orders" in v for v in found)
    assert any("filter rejection" in v and "rb-tiny" in v for v in found)
    assert any("a secret" in v for v in found)
