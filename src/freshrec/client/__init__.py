"""A Python client for a freshrec server: :class:`Client` (sync) and :class:`AsyncClient` (asyncio).

Typed answers, API keys (``Authorization: Bearer``), retries with exponential backoff on 429/503 (after
``Retry-After``) and on connection errors, and buffered event senders. See docs/client.md.
"""

from freshrec.client.aio import AsyncClient
from freshrec.client.models import (
    Accepted,
    FreshrecError,
    Problem,
    Recommendation,
    Recommendations,
    Rejected,
    ViewRows,
)
from freshrec.client.requests import RetryPolicy
from freshrec.client.sender import AsyncEventSender, EventSender
from freshrec.client.sync import Client

__all__ = [
    "Accepted",
    "AsyncClient",
    "AsyncEventSender",
    "Client",
    "EventSender",
    "FreshrecError",
    "Problem",
    "Recommendation",
    "Recommendations",
    "Rejected",
    "RetryPolicy",
    "ViewRows",
]
