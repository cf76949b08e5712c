"""Our client order ids: unique per cycle, leg, slice and attempt; valid on every venue.

``rb`` + 8 base-36 digits of the cycle time in milliseconds since 2000-01-01 UTC (two runs of
one account cannot start in the same millisecond: the account lock serialises them) + ``s``
or ``b`` + the leg (and, for sliced or limit orders, the part). Lower-case letters and
digits, at most 15 characters -- within Kraken's 18 for a free-text ``cl_ord_id`` and
Binance's 36. Pure.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rebalancer.core.model import Side

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"

#: most slices one leg is cut into: 2 x 300 < 36**2 keeps the part in two digits
MAX_PARTS = 300

#: client ids count milliseconds from here; 8 base-36 digits last until 2089
ID_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

_MS = timedelta(milliseconds=1)


def _base36(n: int, width: int = 1) -> str:
    out = ""
    while n or not out:
        n, r = divmod(n, 36)
        out = _B36[r] + out
    return out.rjust(width, "0")


def id_stamp(at: datetime) -> str:
    """``at`` as 8 base-36 digits of milliseconds since 2000-01-01 UTC: the part of a client
    order id that makes it unique to the cycle (two runs of one account cannot start in the
    same millisecond: the account lock serialises them). :func:`id_time` reads it back."""
    ms = (at - ID_EPOCH) // _MS
    if not 0 <= ms < 36**8:
        raise ValueError(f"client order ids cover 2000-01-01 .. 2089, not {at:%Y-%m-%d}")
    return _base36(ms, 8)


def id_time(client_order_id: str) -> datetime:
    """The cycle time (to the millisecond) a client order id of ours was made for."""
    return ID_EPOCH + int(client_order_id[2:10], 36) * _MS


def client_order_id(at: datetime, side: Side, index: int) -> str:
    """Per cycle time and leg: ``rb`` + :func:`id_stamp` + s|b + the leg's index, e.g.
    ``rb0v9kq1z4s0`` (lower-case letters and digits, 12 characters for up to 10 legs)."""
    return f"rb{id_stamp(at)}{side.value[0]}{index}"


def part_order_id(at: datetime, side: Side, index: int, part: int, fallback: bool) -> str:
    """The client id of slice ``part`` of leg ``index`` (limit or market) or, with
    ``fallback``, of the market order sending what its limit left: ``rb`` +
    :func:`id_stamp` + s|b + the leg in base 36 + ``2 * part + fallback`` as two base-36
    digits. 14 characters for up to 36 legs and 648 parts (15 up to 1296 legs) -- within
    every venue's limit (Kraken's free-text ``cl_ord_id`` takes 18, Binance 36). A cycle
    uses either these or the plain :func:`client_order_id` for all its orders."""
    tail = _base36(2 * part + int(fallback), 2)
    return f"rb{id_stamp(at)}{side.value[0]}{_base36(index)}{tail}"
