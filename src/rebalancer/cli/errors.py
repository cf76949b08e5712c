"""How the CLI prints an error: one line, never a secret.

Every message shown on the terminal goes through :func:`error_text`, the same masking the
log handlers apply (:func:`rebalancer.logs.redact`): ``signature=`` and ``apiKey=`` values of
signed exchange URLs, passwords in URLs (``user:PASSWORD@`` and ``?password=``), tokens,
``Authorization`` headers and notification URLs.
"""

from __future__ import annotations

from rebalancer.logs import redact


def error_text(exc: BaseException) -> str:
    """``str(exc)`` with every secret-looking part masked as ``***``."""
    from rebalancer.config.secrets import mask_url  # pydantic: not at `--help` time

    return redact(mask_url(str(exc)))
