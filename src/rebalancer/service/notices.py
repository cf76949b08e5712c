"""What the user hears about a cycle once it is recorded: :func:`tell`."""

from __future__ import annotations

from rebalancer.ports import Event, Notifier
from rebalancer.service.report import CycleReport


def tell(notifier: Notifier, report: CycleReport) -> None:
    """Send the cycle's events: its fills (``rebalance``), else its unfilled limits
    (``limit``); each order not placed (``skip``); transfers suggested (``transfer``)."""
    if report.fills:
        lines = [f"{f.side.value} {f.amount} {f.symbol} @ {f.price:.6g}" for f in report.fills]
        lines += [x.describe() for x in report.limits]
        title = f"rebalanced: {len(report.fills)} orders"
        notifier.send(Event("rebalance", title, "\n".join(lines), report.summary()))
    elif report.limits:  # limits that filled nothing, their rest left for the next cycle
        title = f"{len(report.limits)} limit order(s) unfilled"
        body = "\n".join(x.describe() for x in report.limits)
        notifier.send(Event("limit", title, body, report.summary()))
    for failed in report.failed:
        notifier.send(Event("skip", f"order {failed.order.symbol} not placed", failed.error))
    if report.suggestions:
        notifier.send(
            Event(
                "transfer",
                f"{len(report.suggestions)} transfer(s) between accounts suggested",
                "\n".join(report.suggestions)
                + "\n(the bot never moves money between accounts: you decide)",
                {"suggestions": list(report.suggestions)},
            )
        )
