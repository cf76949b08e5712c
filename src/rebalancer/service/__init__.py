"""One rebalance cycle, the same live, in paper and in replays over history; only the
adapters passed in differ.

:func:`run_cycle` (or :func:`run` over a :class:`Wiring` and a :class:`Request`) runs the
steps of :mod:`.steps` in order over one :class:`~.context.Cycle` (:mod:`.cycle`):

retarget -> reconcile -> read -> decide -> plan -> risk -> sells -> re-plan -> buys -> read
after, then record: the cycle is journaled and told whatever step failed once the account
was read, and a cycle that traded is recorded as fired.

Sells go first; balances are read again before the buys, which are re-planned from the
cash the sells really produced, towards the same targets and band as the plan. A leg that
fails is reported and the rest of the plan goes on; an order whose outcome is unknown
stops the cycle (it must be looked up, never re-sent).

Safety, in the order it runs: :func:`reconcile` first resolves every order intent left
unresolved by an earlier cycle (by looking it up on the exchange) and no order is sent
while any outcome stays unknown; an active halt blocks every order; the circuit breaker
(:mod:`rebalancer.core.risk`, :mod:`.guard`) halts on a drawdown, too much turnover or a
notional cap; each order's intent is journaled before the request is sent and its outcome
after (:mod:`.orders`).

The modules: :mod:`.cycle` (the pipeline and its failure rules), :mod:`.context` (the
cycle's state), :mod:`.steps`, :mod:`.read` (:func:`evaluate`, :func:`reconcile`),
:mod:`.guard`, :mod:`.orders`, :mod:`.notices`, :mod:`.report` (the cycle report),
:mod:`.targets` (optimised targets on a schedule); client order ids are
:mod:`rebalancer.core.order_ids`.
"""

from __future__ import annotations

from rebalancer.core.order_ids import client_order_id, id_stamp, id_time, part_order_id
from rebalancer.service.context import Request, Wiring
from rebalancer.service.cycle import run, run_cycle
from rebalancer.service.orders import transfer_suggestions
from rebalancer.service.read import evaluate, reconcile
from rebalancer.service.report import (
    CycleReport,
    FailedOrder,
    LimitOrder,
    ReconcileReport,
    fill_dict,
)
from rebalancer.service.targets import Retarget, TargetsStep, apply_targets

__all__ = [
    "CycleReport",
    "FailedOrder",
    "LimitOrder",
    "ReconcileReport",
    "Request",
    "Retarget",
    "TargetsStep",
    "Wiring",
    "apply_targets",
    "client_order_id",
    "evaluate",
    "fill_dict",
    "id_stamp",
    "id_time",
    "part_order_id",
    "reconcile",
    "run",
    "run_cycle",
    "transfer_suggestions",
]
