"""Exchange keys: read from the environment or a ``.env`` file, never from the TOML.

Variables are named after the exchange id: ``BINANCE_API_KEY``, ``BINANCE_API_SECRET`` and,
for exchanges that need one (OKX, KuCoin, ...), ``OKX_API_PASSWORD``. The process
environment wins over the ``.env`` file; ``os.environ`` is never modified. Values are held as
:class:`~pydantic.SecretStr` and never appear in ``repr``/``str`` or in error messages.
A ``.env`` that other users can read or write (any group/other permission bit) is refused
with :class:`DotenvExposed`: ``chmod 600`` it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import platformdirs
from pydantic import SecretStr

from rebalancer.config.exchanges import PASSWORD_EXCHANGES
from rebalancer.config.problems import is_secret_key
from rebalancer.core.errors import AuthError, ConfigError

_FIELDS = ("api_key", "secret", "password")
_SUFFIX = {"api_key": "API_KEY", "secret": "API_SECRET", "password": "API_PASSWORD"}
_CCXT_NAME = {"api_key": "apiKey", "secret": "secret", "password": "password"}


DOTENV_NAME = ".env"


class DotenvExposed(ConfigError):
    """A file holding secrets is owned by, readable or writable by other users."""


def default_dotenv() -> Path:
    """The ``.env`` used when no config file is given: the user config folder's."""
    return Path(platformdirs.user_config_dir("rebalancer", False)) / DOTENV_NAME


def check_private(path: Path) -> None:
    """Refuse ``path`` unless this user owns it and its mode gives group and others no
    access (mode & 0o077 == 0): another user could otherwise read the secrets, or write
    their own (a dashboard token, a key) for this process to trust."""
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    uid = os.getuid() if hasattr(os, "getuid") else info.st_uid
    if info.st_uid != uid:
        raise DotenvExposed(
            f"{path}: the secrets file is owned by another user (uid {info.st_uid}, you are "
            f"{uid}); its values are not trusted. Fix: create it yourself (or `chown` it to "
            f"you) and `chmod 600 {path}`"
        )
    if mode & 0o077:
        raise DotenvExposed(
            f"{path}: the secrets file is readable or writable by other users (mode "
            f"{mode:o}); run `chmod 600 {path}` so only you can read it"
        )


def read_dotenv(path: Path | None) -> dict[str, str]:
    """The variables of the ``.env`` at ``path`` ({} when None or no such file), after
    :func:`check_private`. Values without ``=`` are left out."""
    if path is None or not path.is_file():
        return {}
    check_private(path)
    from dotenv import dotenv_values  # only when there is a file to read (start-up time)

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


MASK = "***"
_SIGNED_PARAMS = {"signature", "sig", "sign"}  # a signed request's signature (Binance, ...)
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)


def url_secrets(url: str) -> list[str]:
    """Where ``url`` carries a secret: ``"password"`` for one in its user info, and the
    names of query parameters named like one (``password``, ``sslpassword``, ``token``...)."""
    try:
        parts = urlsplit(url)
        found = ["password"] if parts.password else []
    except ValueError:
        return []
    names = [k for k, v in parse_qsl(parts.query, keep_blank_values=True) if v]
    return found + [k for k in names if is_secret_key(k)]


def mask_url(text: str) -> str:
    """``text`` with every URL's password (``user:PASSWORD@``) and secret-named query
    values (``?password=...``, ``&sslpassword=...``, ``&signature=...``) shown as ``***``;
    the rest unchanged,
    so the host and database stay readable."""
    return _URL.sub(lambda m: _mask_one(m.group(0)), text)


def _mask_one(url: str) -> str:
    head, sep, query = url.partition("?")
    scheme, _, rest = head.partition("://")
    auth, at, host = rest.rpartition("@")
    if at and ":" in auth:
        head = f"{scheme}://{auth.split(':', 1)[0]}:{MASK}@{host}"
    if not sep:
        return head
    pairs = []
    for pair in query.split("&"):
        name, eq, value = pair.partition("=")
        secret = is_secret_key(name) or name.lower() in _SIGNED_PARAMS
        pairs.append(f"{name}={MASK}" if eq and value and secret else pair)
    return f"{head}?{'&'.join(pairs)}"


def env_prefix(exchange: str) -> str:
    """``"binance"`` -> ``"BINANCE"`` (anything but letters and digits becomes ``_``)."""
    return re.sub(r"[^A-Z0-9]", "_", exchange.upper())


def env_names(exchange: str) -> dict[str, str]:
    """Field -> environment variable name, e.g. ``{"api_key": "BINANCE_API_KEY", ...}``."""
    prefix = env_prefix(exchange)
    return {f: f"{prefix}_{_SUFFIX[f]}" for f in _FIELDS}


def password_required(exchange: str) -> bool:
    """Whether ``exchange`` needs a password (passphrase) besides key and secret."""
    return exchange in PASSWORD_EXCHANGES


@dataclass(frozen=True, repr=False)
class ExchangeKeys:
    """The credentials for one exchange; any may be None (not set)."""

    exchange: str
    api_key: SecretStr | None = None
    secret: SecretStr | None = None
    password: SecretStr | None = None
    needs_password: bool = False
    searched: tuple[str, ...] = ("the environment",)
    prefix: str = ""

    @property
    def names(self) -> dict[str, str]:
        return env_names(self.prefix or self.exchange)

    def _needed(self) -> tuple[str, ...]:
        return _FIELDS if self.needs_password else _FIELDS[:2]

    def status(self) -> dict[str, str]:
        """Variable name -> ``"set"``, ``"missing"`` or ``"not needed"`` (never a value)."""
        out: dict[str, str] = {}
        for field in _FIELDS:
            if getattr(self, field) is not None:
                out[self.names[field]] = "set"
            else:
                out[self.names[field]] = "missing" if field in self._needed() else "not needed"
        return out

    @property
    def missing(self) -> list[str]:
        """Names of the needed variables that are not set."""
        return [self.names[f] for f in self._needed() if getattr(self, f) is None]

    def require_keys(self) -> ExchangeKeys:
        """Return self when every needed key is set; else raise :class:`AuthError`."""
        missing = self.missing
        if missing:
            raise AuthError(
                f"live trading on {self.exchange} needs API keys, but {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not set (looked in "
                f"{' and '.join(self.searched)}). Fix: put them in a .env file next to your "
                "config (or export them), never in the TOML; create the keys with trade "
                "permission only, withdrawals disabled"
            )
        return self

    def ccxt_credentials(self) -> dict[str, str]:
        """The keys as CCXT's constructor wants them (``apiKey``, ``secret``, ``password``)."""
        out: dict[str, str] = {}
        for field in _FIELDS:
            value: SecretStr | None = getattr(self, field)
            if value is not None:
                out[_CCXT_NAME[field]] = value.get_secret_value()
        return out

    def __repr__(self) -> str:
        shown = ", ".join(f"{f}={'set' if getattr(self, f) else 'missing'}" for f in _FIELDS)
        return f"ExchangeKeys(exchange={self.exchange!r}, {shown})"

    __str__ = __repr__


def load_secrets(
    exchange: str,
    env: Mapping[str, str] | None = None,
    dotenv_path: Path | None = None,
    *,
    prefix: str = "",
) -> ExchangeKeys:
    """Read ``exchange``'s keys from ``env`` (default ``os.environ``) and a ``.env`` file.

    ``dotenv_path`` defaults to :func:`default_dotenv` (pass ``settings.dotenv_path``: the
    ``.env`` next to the config); a missing file is simply not used, one that another user
    owns or can read raises :class:`DotenvExposed` (mode must be 600). Empty values
    count as not set. The environment wins over the file. ``prefix`` names the variables
    instead of the exchange id (an account name: ``"main"`` -> ``MAIN_API_KEY``), for two
    accounts on one exchange.
    """
    environ = os.environ if env is None else env
    path = default_dotenv() if dotenv_path is None else dotenv_path
    searched = ["the environment"]
    from_file = read_dotenv(path)
    searched.append(str(path) if path.is_file() else f"{path} (no such file)")
    values: dict[str, SecretStr | None] = {}
    for field, name in env_names(prefix or exchange).items():
        raw = (environ.get(name) or "").strip() or from_file.get(name, "").strip()
        values[field] = SecretStr(raw) if raw else None
    return ExchangeKeys(
        exchange=exchange,
        api_key=values["api_key"],
        secret=values["secret"],
        password=values["password"],
        needs_password=password_required(exchange),
        searched=tuple(searched),
        prefix=prefix,
    )
