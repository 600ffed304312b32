"""Connections to PostgreSQL for the integrations (psycopg 3, the ``postgres`` extra)."""

from __future__ import annotations

from typing import Any

try:
    import psycopg
    from psycopg import sql
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("the PostgreSQL integrations need psycopg 3: pip install 'freshrec[postgres]'") from exc

__all__ = ["SetupError", "connect", "sql"]


class SetupError(Exception):
    """The database is not set up for what freshrec was asked to do; the message says what to run."""


def connect(dsn: str, **options: Any) -> psycopg.Connection[Any]:
    """An autocommit connection, or :class:`SetupError` saying why there is none."""
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10, **options)
    except psycopg.OperationalError as exc:
        raise SetupError(f"cannot connect to PostgreSQL: {str(exc).strip()}") from None
