"""Several accounts (exchanges) managed as one portfolio, behind the one Exchange port.

* :meth:`MultiAccountExchange.snapshot` asks every account for its own snapshot (so the
  request count per account stays what that account costs alone) and adds the balances up.
  Prices, bids and asks come from the first account, in configuration order, that lists
  the asset; the market rules of every account are kept for routing.
* :meth:`MultiAccountExchange.create_market_order` (and ``create_limit_order``) routes a
  leg: a sell to the account holding the most of the asset, a buy to an account listing
  the asset that can pay for all of it (the one listing the fewest assets, so versatile
  accounts keep their cash for the assets only they list). Only when no single account can
  take the whole leg is it split, largest holder first, each piece truncated to that
  account's step and checked against its minimums.
  Every piece carries the leg's client order id (unique per account), so
  :meth:`fetch_order` finds all the pieces again and adds them up, and
  :meth:`cancel_order` cancels every piece still resting (reconciliation after a crash).
* Money never moves between accounts: when a buy cannot be funded where its market is,
  :meth:`suggestions` explains which transfer would help, and the user decides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal

from rebalancer.core.errors import (
    InsufficientFunds,
    OrderOutcomeUnknown,
    RetryLater,
    SkipLeg,
    UnknownSymbol,
)
from rebalancer.core.model import ZERO, Fill, MarketRules, OrderRequest, Side, Snapshot
from rebalancer.core.rules import truncate, violation
from rebalancer.ports import Exchange

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Piece:
    """One order sent to one account for (part of) a leg."""

    account: str
    order: OrderRequest


def _pct(part: Decimal, whole: Decimal) -> str:
    return f"{part / whole * 100:.0f} %" if whole > 0 else "0 %"


class MultiAccountExchange:
    """``accounts``: name -> Exchange, in priority order (prices come from the first).

    ``cash_margin``: the fraction of an account's free quote kept back when a buy is split
    across accounts (fees and slippage must still fit).
    """

    def __init__(
        self, accounts: Mapping[str, Exchange], *, cash_margin: Decimal = Decimal("0.002")
    ) -> None:
        if not accounts:
            raise ValueError("MultiAccountExchange needs at least one account")
        self.accounts = dict(accounts)
        self.name = "+".join(self.accounts)
        self.cash_margin = cash_margin
        self.quote = ""
        # per account: the rules of each asset it lists, and its free balances (kept up to
        # date with the fills sent through this object between two snapshots)
        self.rules: dict[str, dict[str, MarketRules]] = {}
        self.free: dict[str, dict[str, Decimal]] = {}
        self.prices: dict[str, Decimal] = {}
        self.routes: list[Piece] = []
        self._suggestions: list[str] = []

    # -- snapshot ---------------------------------------------------------------------------

    def _listed(self, account: Exchange, assets: Sequence[str], quote: str) -> list[str]:
        """The assets ``account`` has a market for against ``quote`` (all, if it cannot say)."""
        tradable = getattr(account, "tradable", None)
        return list(assets) if tradable is None else list(tradable(assets, quote))

    def snapshot(self, assets: Sequence[str], quote: str) -> Snapshot:
        quote = quote.upper()
        wanted = [a.upper() for a in dict.fromkeys(assets) if a.upper() != quote]
        snaps = {
            name: account.snapshot(self._listed(account, wanted, quote), quote)
            for name, account in self.accounts.items()
        }
        balances = {a: ZERO for a in [*wanted, quote]}
        prices: dict[str, Decimal] = {}
        bids: dict[str, Decimal] = {}
        asks: dict[str, Decimal] = {}
        markets: dict[str, MarketRules] = {}
        self.quote = quote
        self.rules = {name: dict(s.markets) for name, s in snaps.items()}
        self.free = {name: {a: s.amount(a) for a in balances} for name, s in snaps.items()}
        self._suggestions = []
        for snap in snaps.values():
            for asset in balances:
                balances[asset] += snap.amount(asset)
            for asset, price in snap.prices.items():
                if asset in prices:
                    continue
                prices[asset] = price
                markets[asset] = snap.markets[asset]
                if asset in snap.bids:
                    bids[asset] = snap.bids[asset]
                if asset in snap.asks:
                    asks[asset] = snap.asks[asset]
        missing = [a for a in wanted if a not in prices]
        if missing:
            raise UnknownSymbol(
                f"no account lists a market for {', '.join(f'{a}/{quote}' for a in missing)} "
                f"(accounts: {', '.join(self.accounts)})"
            )
        self.prices = prices
        taken_at = max(s.taken_at for s in snaps.values())
        return Snapshot(quote, balances, prices, markets, taken_at, bids, asks)

    def holdings(self) -> dict[str, dict[str, Decimal]]:
        """Free balances per account as of the last snapshot (and the fills since)."""
        return {name: dict(free) for name, free in self.free.items()}

    def suggestions(self) -> list[str]:
        """Transfers that would let the plan execute in full (never made by the bot)."""
        return list(self._suggestions)

    # -- routing ----------------------------------------------------------------------------

    def _require_snapshot(self, order: OrderRequest) -> None:
        if not self.free:
            raise RetryLater(f"{order.symbol}: no snapshot yet, cannot route the order")

    def route(self, order: OrderRequest) -> list[Piece]:
        """The pieces ``order`` is sent as (empty when no account can take any of it)."""
        self._require_snapshot(order)
        if order.side is Side.SELL:
            return self._route_sell(order)
        return self._route_buy(order)

    def _listing(self, asset: str) -> list[str]:
        return [name for name, rules in self.rules.items() if asset in rules]

    def _piece(self, account: str, order: OrderRequest, amount: Decimal) -> Piece | None:
        rules = self.rules[account][order.asset]
        amount = truncate(amount, rules.amount_step)
        problem = violation(rules, amount, order.expected_price)
        if problem is not None:
            log.info("%s on %s: piece skipped (%s)", order.symbol, account, problem[1])
            return None
        share = amount / order.amount if order.amount > 0 else ZERO
        return Piece(
            account,
            replace(
                order,
                amount=amount,
                expected_cost=amount * order.expected_price,
                expected_fee=order.expected_fee * share,
            ),
        )

    def _route_sell(self, order: OrderRequest) -> list[Piece]:
        holders = sorted(
            ((self.free[n].get(order.asset, ZERO), n) for n in self._listing(order.asset)),
            reverse=True,
        )
        holders = [(held, n) for held, n in holders if held > 0]
        if holders and holders[0][0] >= order.amount:
            return [Piece(holders[0][1], order)]
        pieces: list[Piece] = []
        left = order.amount
        for held, name in holders:
            piece = self._piece(name, order, min(left, held))
            if piece is not None:
                pieces.append(piece)
                left -= piece.order.amount
            if left <= 0:
                break
        return pieces

    def _route_buy(self, order: OrderRequest) -> list[Piece]:
        quote = self.quote
        listing = self._listing(order.asset)
        funded = sorted(((self.free[n].get(quote, ZERO), n) for n in listing), reverse=True)
        need = order.expected_cost
        # the fee may come on top of the cost (Kraken buys by amount, fee in the quote)
        with_fee = 1 + (order.expected_fee / need if need > 0 else ZERO)
        # Of the accounts that can pay for the whole leg, take the one listing the fewest
        # assets: the cash of an account that lists more stays for the assets only it has.
        able = [(len(self.rules[n]), -cash, n) for cash, n in funded if cash >= need * with_fee]
        if able:
            return [Piece(min(able)[2], order)]
        pieces: list[Piece] = []
        left = need
        for cash, name in funded:
            usable = min(left, cash * (1 - self.cash_margin) / with_fee)
            if usable <= 0 or order.expected_price <= 0:
                continue
            piece = self._piece(name, order, usable / order.expected_price)
            if piece is not None:
                pieces.append(piece)
                left -= piece.order.expected_cost
            if left <= 0:
                break
        if left > 0:
            self._suggest_cash(order, left, listing)
        return pieces

    def _suggest_cash(self, order: OrderRequest, short: Decimal, listing: list[str]) -> None:
        quote = self.quote
        total = sum((f.get(quote, ZERO) for f in self.free.values()), ZERO)
        others = sorted(
            ((f.get(quote, ZERO), n) for n, f in self.free.items() if n not in listing),
            reverse=True,
        )
        where = " or ".join(listing) if listing else "no account"
        if others and others[0][0] > 0:
            cash, source = others[0]
            amount = min(short, cash)
            text = (
                f"{source} holds {_pct(cash, total)} of the {quote} but {where} needs it for "
                f"{order.asset} buys: move {amount:.2f} {quote} from {source} to "
                f"{listing[0] if listing else 'an account listing ' + order.asset}"
            )
        else:
            text = (
                f"{order.asset} buy short by {short:.2f} {quote}: no account has spare "
                f"{quote} where {order.asset} trades ({where})"
            )
        self._suggestions.append(text)
        log.warning("suggested transfer (never made by the bot): %s", text)

    # -- orders -----------------------------------------------------------------------------

    def create_market_order(self, order: OrderRequest) -> Fill:
        return self._send(order, lambda account, piece: account.create_market_order(piece))

    def create_limit_order(self, order: OrderRequest, price: Decimal, timeout: timedelta) -> Fill:
        """A post-only limit at ``price`` (quote per base), routed like a market order: to
        the account holding the asset (sell) or the one that lists it and can pay (buy); each
        account rounds ``price`` to its own tick and waits up to ``timeout`` (a leg split
        across accounts waits up to ``timeout`` per piece). The pieces' fills are added up;
        the status is "closed" only when every piece completed."""
        return self._send(
            order, lambda account, piece: account.create_limit_order(piece, price, timeout)
        )

    def _send(self, order: OrderRequest, place: Callable[[Exchange, OrderRequest], Fill]) -> Fill:
        """Route ``order`` and ``place`` each piece on its account; the fills added up."""
        before = len(self._suggestions)
        pieces = self.route(order)
        if not pieces:
            hint = "; ".join(self._suggestions[before:])
            held = {
                n: str(f.get(order.asset if order.side is Side.SELL else self.quote, ZERO))
                for n, f in self.free.items()
            }
            raise InsufficientFunds(
                f"{order.side} {order.amount} {order.symbol}: no account can take any of it "
                f"within its market rules (free per account: {held})"
                + (f"; suggested: {hint}" if hint else "")
            )
        fills: list[tuple[str, Fill]] = []
        refused: SkipLeg | None = None
        for piece in pieces:
            self.routes.append(piece)
            try:
                fill = place(self.accounts[piece.account], piece.order)
            except SkipLeg as exc:
                log.warning("%s on %s: %s", order.symbol, piece.account, exc)
                refused = refused or exc
                continue
            self._track(piece.account, fill)
            fills.append((piece.account, fill))
        if not fills:
            assert refused is not None
            raise refused
        return self._combine(order, fills)

    def _track(self, account: str, fill: Fill) -> None:
        free = self.free[account]
        sign = 1 if fill.side is Side.BUY else -1
        free[fill.asset] = free.get(fill.asset, ZERO) + sign * fill.amount
        free[self.quote] = free.get(self.quote, ZERO) - sign * fill.cost
        if fill.fee_asset in free:
            free[fill.fee_asset] -= fill.fee

    def _combine(self, order: OrderRequest, fills: list[tuple[str, Fill]]) -> Fill:
        """One Fill for the pieces: amounts and costs summed, the fee in one asset."""
        if len(fills) == 1:
            return fills[0][1]
        amount = sum((f.amount for _, f in fills), ZERO)
        cost = sum((f.cost for _, f in fills), ZERO)
        fee_assets = {f.fee_asset for _, f in fills if f.fee > 0}
        if len(fee_assets) <= 1:
            fee_asset = next(iter(fee_assets), "")
            fee = sum((f.fee for _, f in fills), ZERO)
        else:  # different fee assets (e.g. BNB on one, USDT on another): value them in quote
            fee_asset, fee = self.quote, ZERO
            for name, f in fills:
                price = Decimal(1) if f.fee_asset == self.quote else self.prices.get(f.fee_asset)
                if price is None:
                    log.warning("%s: fee %s %s not valued (no price)", name, f.fee, f.fee_asset)
                    continue
                fee += f.fee * price
        statuses = {f.status for _, f in fills}
        return Fill(
            client_order_id=order.client_order_id,
            asset=order.asset,
            symbol=order.symbol,
            side=order.side,
            amount=amount,
            price=cost / amount if amount > 0 else ZERO,
            cost=cost,
            fee=fee,
            fee_asset=fee_asset,
            status="closed" if statuses == {"closed"} else sorted(statuses - {"closed"})[0],
            exchange_order_id=",".join(f"{n}:{f.exchange_order_id}" for n, f in fills),
        )

    def fetch_order(self, client_order_id: str, symbol: str) -> Fill | None:
        """Every account's piece of the leg ``client_order_id``, added up (None: none)."""
        return self._gather(client_order_id, symbol, lambda a: a.fetch_order)

    def cancel_order(self, client_order_id: str, symbol: str) -> Fill | None:
        """Cancel our order ``client_order_id`` if it still rests, then return its final state read
        back from the exchange (a Fill with the amount really filled and status "canceled" or
        "closed"); None when the exchange has no order with that client id. Raises
        OrderOutcomeUnknown when its final state cannot be confirmed.

        Every account listing ``symbol`` is asked (a split leg rests as one piece per
        account, all with the same client id) and the pieces are added up. When one
        account cannot confirm its piece, the others are still cancelled before
        OrderOutcomeUnknown is raised."""
        return self._gather(client_order_id, symbol, lambda a: a.cancel_order)

    def _gather(
        self,
        client_order_id: str,
        symbol: str,
        method: Callable[[Exchange], Callable[[str, str], Fill | None]],
    ) -> Fill | None:
        """``method(account)(client_order_id, symbol)`` on every account listing ``symbol``,
        the pieces found added up (None: none). An OrderOutcomeUnknown from one account is
        raised after all the others have been asked."""
        asset, _, quote = symbol.partition("/")
        fills: list[tuple[str, Fill]] = []
        unknown: OrderOutcomeUnknown | None = None
        for name, account in self.accounts.items():
            if not self._listed(account, [asset], quote):
                continue
            try:
                found = method(account)(client_order_id, symbol)
            except OrderOutcomeUnknown as exc:
                log.warning("%s on %s: %s", symbol, name, exc)
                unknown = unknown or exc
                continue
            if found is not None:
                fills.append((name, found))
        if unknown is not None:
            raise unknown
        if not fills:
            return None
        self.quote = self.quote or quote
        first = fills[0][1]
        probe = OrderRequest(
            first.asset, symbol, first.side, ZERO, ZERO, ZERO, ZERO, client_order_id
        )
        return self._combine(probe, fills)
