"""The steps of a cycle, in the order :data:`rebalancer.service.cycle.STEPS` runs them.

Each takes the :class:`~rebalancer.service.context.Cycle`, adds what it finds, and returns
whether the cycle goes on. None records or notifies: the runner does that once, whatever
step failed (:mod:`rebalancer.service.cycle`).
"""

from __future__ import annotations

from dataclasses import replace

from rebalancer.core.drift import compute_drift
from rebalancer.core.flows import detect_flows, flow_targets
from rebalancer.core.model import ZERO, OrderRequest, Side, Snapshot
from rebalancer.core.planner import effective_targets, plan
from rebalancer.core.triggers import Decision
from rebalancer.service import guard
from rebalancer.service.context import Basis, Cycle
from rebalancer.service.orders import send_orders
from rebalancer.service.read import evaluate, reconcile
from rebalancer.service.targets import apply_targets


def retarget(cycle: Cycle) -> bool:
    """Optimised targets in force now (new ones journaled first when due) replace the
    strategy's for the rest of the cycle."""
    w, req = cycle.wiring, cycle.request
    if w.retarget is not None:
        step = apply_targets(
            w.retarget,
            w.journal,
            w.notifier,
            cycle.strategy,
            req.at,
            w.history,
            execute=req.execute,
        )
        cycle.strategy, cycle.targets_note = step.strategy, step.note
        cycle.targets_changed = step.changed
    return True


def reconcile_intents(cycle: Cycle) -> bool:
    """Resolve the intents an earlier cycle left unresolved (when executing)."""
    if cycle.request.execute:
        cycle.reconciled = reconcile(cycle.wiring.exchange, cycle.wiring.journal, cycle.request.at)
    return True


def read_account(cycle: Cycle) -> bool:
    """Read balances and prices, compute the drift, ask the rule, find the cash flows."""
    w, req = cycle.wiring, cycle.request
    snapshot, drift, decision = evaluate(w.exchange, w.journal, cycle.strategy, req.at, w.history)
    if req.expected is not None:
        cycle.flows = detect_flows(req.expected, snapshot.balances)
    cycle.snapshot, cycle.drift, cycle.decision = snapshot, drift, decision
    return True


def decide(cycle: Cycle) -> bool:
    """Whether to trade, and towards what (the :class:`Basis` of the plan and the buys).

    The rule firing, ``force`` or targets changed by the optimiser: a full rebalance to the
    strategy's targets and band. Otherwise a quote deposit or withdrawal with
    ``cash_flows = "spread"``: only that flow is traded, to the weights of
    :func:`~rebalancer.core.flows.flow_targets` exactly (no band: they already say how far
    each leg goes). Otherwise nothing.
    """
    _, _, decision = cycle.seen()
    strategy = cycle.strategy
    if cycle.request.force and not decision.fire:
        decision = Decision(True, f"forced by the user ({decision.reason})")
    if cycle.targets_changed:  # new targets: rebalance to them (as the backtest does)
        decision = replace(decision, fire=True, reason=f"targets changed ({decision.reason})")
    if decision.fire:
        cycle.basis = Basis(strategy.targets, strategy.threshold)
    elif cycle.flows and strategy.policy.cash_flows == "spread":
        decision = _spread_flow(cycle, decision)
    cycle.decision = decision
    return True


def _spread_flow(cycle: Cycle, decision: Decision) -> Decision:
    """Aim the cycle at the quote flow alone (sets the basis); the decision that says so."""
    _, drift, _ = cycle.seen()
    quote = cycle.strategy.quote
    flow = cycle.flows.get(quote, ZERO)
    weights = flow_targets(drift, flow, quote)
    if weights is None:
        return decision
    cycle.basis = Basis(weights, None)
    kind, where = ("deposit", "underweight") if flow > 0 else ("withdrawal", "overweight")
    return Decision(
        True,
        f"{kind} of {abs(flow)} {quote} spread over the {where} assets ({decision.reason})",
    )


def plan_orders(cycle: Cycle) -> bool:
    """Plan the sells and buys towards the basis (none when there is nothing to aim at)."""
    snapshot, _, _ = cycle.seen()
    if cycle.basis is not None:
        basis = cycle.basis
        cycle.plan = plan(snapshot, basis.targets, cycle.strategy.policy, basis.band)
    return True


def check_risk(cycle: Cycle) -> bool:
    """Planning only ends here. Otherwise stop on an unknown outcome, a halt or a breach
    of the risk limits (which halts); go on only with a plan to execute."""
    if not cycle.request.execute:
        return False
    cycle.stopped = guard.blocked(cycle)
    return not cycle.stopped and cycle.plan is not None


def sell(cycle: Cycle) -> bool:
    """Send the planned sells, each journaled first; stop on an unknown outcome."""
    snapshot, _, _ = cycle.seen()
    assert cycle.plan is not None
    cycle.executed = True
    return _send(cycle, cycle.plan.sells, Side.SELL, snapshot)


def replan_buys(cycle: Cycle) -> bool:
    """Read the balances again and plan the buys from the cash the sells really produced,
    towards the same basis as the plan; stop when they would breach the risk limits."""
    w, basis = cycle.wiring, cycle.basis
    assert basis is not None
    after = w.exchange.snapshot(cycle.strategy.assets, cycle.strategy.quote)
    cycle.after_sells = after
    policy = cycle.strategy.policy
    cycle.buy_plan = plan(after, basis.targets, policy, basis.band, phase="buys")
    cycle.stopped = guard.buys_blocked(cycle)
    return not cycle.stopped


def buy(cycle: Cycle) -> bool:
    """Send the re-planned buys, each journaled first; stop on an unknown outcome."""
    assert cycle.buy_plan is not None and cycle.after_sells is not None
    return _send(cycle, cycle.buy_plan.buys, Side.BUY, cycle.after_sells)


def read_after(cycle: Cycle) -> bool:
    """Read the account once more: the drift after trading, against the targets in force."""
    strategy = cycle.strategy
    final = cycle.wiring.exchange.snapshot(strategy.assets, strategy.quote)
    targets = effective_targets(final, strategy.targets, strategy.policy)
    cycle.drift_after = compute_drift(final, targets)
    return True


def _send(cycle: Cycle, orders: tuple[OrderRequest, ...], side: Side, quotes: Snapshot) -> bool:
    """Send ``orders`` priced from ``quotes``; False (and why) when an outcome is unknown."""
    w = cycle.wiring
    execution = cycle.strategy.execution
    sent = cycle.sent
    if send_orders(w.exchange, w.journal, orders, side, sent, quotes, execution, w.pause):
        return True
    cycle.stopped = sent.unknown
    return False
