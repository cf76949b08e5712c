"""What an API key may do, asked of the exchange itself (``rebalancer keys check``).

* Binance: ``GET /sapi/v1/account/apiRestrictions`` -- ``enableWithdrawals``,
  ``enableInternalTransfer``, ``permitsUniversalTransfer``, ``enableSpotAndMarginTrading``,
  ``ipRestrict`` (the only exchange here that says whether an IP whitelist is set).
* Kraken: ``POST /0/private/WithdrawMethods`` -- a trade-only key is refused with
  ``EGeneral:Permission denied`` (good); an answer means the key may withdraw.
* Coinbase: ``GET /api/v3/brokerage/key_permissions`` -- ``can_trade``, ``can_transfer``.

A key that can withdraw or transfer funds is refused (:class:`KeyRefused`) unless the user
overrides it explicitly; a key without an IP whitelist is only warned about. Testnet keys
(``sandbox``) hold no real money and are not checked (Binance's testnet has no such call).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ccxt

from rebalancer.adapters.ccxt import errors
from rebalancer.core.errors import AuthError, ConfigError


class KeyRefused(AuthError):
    """The key may move funds off the account (or cannot trade): live trading refused."""


@dataclass(frozen=True)
class KeyPermissions:
    """What the exchange said about one key; None where it does not tell."""

    exchange: str
    can_trade: bool | None = None
    can_withdraw: bool | None = None
    can_transfer: bool | None = None
    ip_restricted: bool | None = None
    checked: bool = True
    notes: tuple[str, ...] = field(default_factory=tuple)

    def refusals(self, *, allow_withdrawals: bool = False) -> list[str]:
        """Why this key must not be used for live trading ([] when it may)."""
        out = []
        if self.can_trade is False:
            out.append("it cannot trade (enable spot trading for the key)")
        if not allow_withdrawals:
            if self.can_withdraw:
                out.append("it can WITHDRAW funds")
            if self.can_transfer:
                out.append("it can TRANSFER funds to other accounts")
        return out

    def warnings(self) -> list[str]:
        out = list(self.notes)
        if self.ip_restricted is False:
            out.append(
                f"{self.exchange}: the key has no IP whitelist; restrict it to this machine's "
                "address in the exchange's API settings"
            )
        if self.can_withdraw or self.can_transfer:
            out.append(f"{self.exchange}: the key can move funds off the account")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "checked": self.checked,
            "can_trade": self.can_trade,
            "can_withdraw": self.can_withdraw,
            "can_transfer": self.can_transfer,
            "ip_restricted": self.ip_restricted,
            "notes": list(self.notes),
        }


def _secrets(client: Any) -> tuple[str, ...]:
    return tuple(str(s) for s in (client.apiKey, client.secret, client.password) if s)


def _ask(client: Any, what: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except ccxt.BaseError as exc:
        raise errors.translate(exc, what=f"keys check: {what}", secrets=_secrets(client)) from exc


def _binance(client: Any) -> KeyPermissions:
    raw = _ask(client, "GET /sapi/v1/account/apiRestrictions", client.sapiGetAccountApiRestrictions)
    return KeyPermissions(
        "binance",
        can_trade=bool(raw.get("enableSpotAndMarginTrading")),
        can_withdraw=bool(raw.get("enableWithdrawals")),
        can_transfer=bool(raw.get("enableInternalTransfer") or raw.get("permitsUniversalTransfer")),
        ip_restricted=bool(raw.get("ipRestrict")),
    )


def _kraken(client: Any) -> KeyPermissions:
    try:
        client.privatePostWithdrawMethods({"asset": "XBT"})
    except ccxt.PermissionDenied:
        can_withdraw = False
    except ccxt.BaseError as exc:
        if "permission denied" not in str(exc).lower():
            raise errors.translate(
                exc, what="keys check: POST /0/private/WithdrawMethods", secrets=_secrets(client)
            ) from exc
        can_withdraw = False
    else:
        can_withdraw = True
    return KeyPermissions(
        "kraken",
        can_withdraw=can_withdraw,
        notes=("kraken: the API does not tell whether trading or an IP whitelist is set",),
    )


def _coinbase(client: Any) -> KeyPermissions:
    raw = _ask(
        client, "GET /api/v3/brokerage/key_permissions", client.v3PrivateGetBrokerageKeyPermissions
    )
    transfer = bool(raw.get("can_transfer"))
    return KeyPermissions(
        "coinbase",
        can_trade=bool(raw.get("can_trade")),
        can_withdraw=transfer,  # Coinbase's transfer permission is what sends funds away
        can_transfer=transfer,
        notes=("coinbase: the API does not tell whether an IP allowlist is set",),
    )


CHECKS: dict[str, Callable[[Any], KeyPermissions]] = {
    "binance": _binance,
    "kraken": _kraken,
    "coinbase": _coinbase,
}


def key_permissions(client: Any) -> KeyPermissions:
    """Ask the exchange behind ``client`` (a CCXT client with keys) what its key may do."""
    exchange = str(client.id)
    if getattr(client, "isSandboxModeEnabled", False):
        return KeyPermissions(
            exchange, checked=False, notes=(f"{exchange}: testnet key, permissions not checked",)
        )
    check = CHECKS.get(exchange)
    if check is None:
        raise ConfigError(
            f"keys check: {exchange} is not supported (supported: {', '.join(sorted(CHECKS))})"
        )
    return check(client)


def refuse_unsafe(perms: KeyPermissions, *, allow_withdrawals: bool = False) -> None:
    """Raise :class:`KeyRefused` when the key may move funds (unless allowed) or cannot trade."""
    reasons = perms.refusals(allow_withdrawals=allow_withdrawals)
    if reasons:
        raise KeyRefused(
            f"{perms.exchange}: the API key is refused for live trading: {'; '.join(reasons)}. "
            "Create a key with trading permission only (withdrawals and transfers disabled), "
            "or pass --allow-withdrawals if you really mean it"
        )


def clients_of(exchange: Any) -> list[Any]:
    """The CCXT clients behind a live exchange (one account, or several joined)."""
    if hasattr(exchange, "client"):
        return [exchange.client]
    accounts = getattr(exchange, "accounts", {})
    return [c for account in accounts.values() for c in clients_of(account)]


def check_live_keys(exchange: Any, *, allow_withdrawals: bool = False) -> list[str]:
    """Check every key behind ``exchange`` at live start; the warnings to show the user."""
    warnings: list[str] = []
    for client in clients_of(exchange):
        perms = key_permissions(client)
        refuse_unsafe(perms, allow_withdrawals=allow_withdrawals)
        warnings.extend(perms.warnings())
    return warnings
