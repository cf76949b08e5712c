"""`keys check`: each exchange is asked what the key may do (through the real CCXT classes)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from doubles.coinbase import new_key_pair
from doubles.permissions import BinancePermissions, CoinbasePermissions, KrakenPermissions
from rebalancer.adapters.ccxt import make_client
from rebalancer.adapters.ccxt.permissions import (
    KeyRefused,
    check_live_keys,
    key_permissions,
    refuse_unsafe,
)
from rebalancer.core.errors import AuthError

BKEY, BSECRET = "perm-binance-key-31c9", "perm-binance-secret-8e2a"
KKEY, KSECRET = "perm-kraken-key-77d1", base64.b64encode(b"perm-kraken-secret-0f4b").decode()
CKEY = "organizations/perm-org/apiKeys/perm-key-5a6b"
CPRIVATE, CPUBLIC = new_key_pair()


def binance() -> tuple[Any, BinancePermissions]:
    client = make_client("binance", BKEY, BSECRET, rateLimit=1)
    return client, BinancePermissions(BKEY, BSECRET).mount(client)  # type: ignore[return-value]


def kraken() -> tuple[Any, KrakenPermissions]:
    client = make_client("kraken", KKEY, KSECRET, rateLimit=1)
    return client, KrakenPermissions(KKEY, KSECRET).mount(client)  # type: ignore[return-value]


def coinbase() -> tuple[Any, CoinbasePermissions]:
    client = make_client("coinbase", CKEY, CPRIVATE, rateLimit=1)
    return client, CoinbasePermissions(CKEY, CPUBLIC).mount(client)  # type: ignore[return-value]


def test_binance_trade_only_key_with_ip_whitelist_passes() -> None:
    client, double = binance()
    perms = key_permissions(client)
    assert (perms.can_trade, perms.can_withdraw, perms.can_transfer) == (True, False, False)
    assert perms.ip_restricted is True and perms.warnings() == []
    refuse_unsafe(perms)
    assert [r.path for r in double.log] == ["/sapi/v1/account/apiRestrictions"]
    assert double.log[0].signed


@pytest.mark.parametrize(
    ("flag", "words"),
    [("enableWithdrawals", "WITHDRAW"), ("enableInternalTransfer", "TRANSFER")],
)
def test_binance_key_that_can_move_funds_is_refused_unless_allowed(flag: str, words: str) -> None:
    client, double = binance()
    double.restrictions[flag] = True
    perms = key_permissions(client)
    with pytest.raises(KeyRefused, match=words) as info:
        refuse_unsafe(perms)
    assert "--allow-withdrawals" in str(info.value) and BKEY not in str(info.value)
    refuse_unsafe(perms, allow_withdrawals=True)  # the explicit override
    assert any("move funds" in w for w in perms.warnings())


def test_binance_key_without_ip_whitelist_is_warned_about() -> None:
    client, double = binance()
    double.restrictions["ipRestrict"] = False
    assert check_live_keys(type("Live", (), {"client": client})()) == [
        "binance: the key has no IP whitelist; restrict it to this machine's address in the "
        "exchange's API settings"
    ]


def test_binance_key_that_cannot_trade_is_refused_even_with_the_override() -> None:
    client, double = binance()
    double.restrictions["enableSpotAndMarginTrading"] = False
    with pytest.raises(KeyRefused, match="cannot trade"):
        refuse_unsafe(key_permissions(client), allow_withdrawals=True)


def test_binance_wrong_key_is_an_auth_error_without_the_secret() -> None:
    client = make_client("binance", BKEY, "a-wrong-secret-9999", rateLimit=1)
    BinancePermissions(BKEY, BSECRET).mount(client)
    with pytest.raises(AuthError) as info:
        key_permissions(client)
    assert "a-wrong-secret-9999" not in str(info.value) and "keys check" in str(info.value)


@pytest.mark.parametrize("can_withdraw", [False, True])
def test_kraken_withdraw_methods_permission_denied_is_good(can_withdraw: bool) -> None:
    client, double = kraken()
    double.can_withdraw = can_withdraw
    perms = key_permissions(client)
    assert perms.can_withdraw is can_withdraw
    assert double.log[-1].path == "/0/private/WithdrawMethods"
    if can_withdraw:
        with pytest.raises(KeyRefused, match="WITHDRAW"):
            refuse_unsafe(perms)
    else:
        refuse_unsafe(perms)


@pytest.mark.parametrize("can_transfer", [False, True])
def test_coinbase_key_permissions(can_transfer: bool) -> None:
    client, double = coinbase()
    double.permissions["can_transfer"] = can_transfer
    perms = key_permissions(client)
    assert perms.can_trade is True and perms.can_transfer is can_transfer
    if can_transfer:
        with pytest.raises(KeyRefused, match="TRANSFER"):
            refuse_unsafe(perms)
    else:
        refuse_unsafe(perms)


def test_testnet_keys_are_not_checked() -> None:
    client = make_client("binance", BKEY, BSECRET, sandbox=True)
    perms = key_permissions(client)
    assert not perms.checked and "testnet" in perms.warnings()[0]
