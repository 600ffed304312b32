"""Buffered event senders: events collected and posted in batches, by size and by time.

A batch the server rejects (422) is all-or-nothing there; the sender reports the events it names
(``on_rejected`` and :attr:`rejected`) and posts the others again, so one bad event never holds back the
rest. A batch that fails after every retry is reported the same way, with the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from freshrec.client.models import Accepted, FreshrecError, Rejected


def _split(batch: list[dict[str, Any]], exc: FreshrecError) -> tuple[Rejected, list[dict[str, Any]]]:
    bad = {p.index for p in exc.details}
    rejected = Rejected([batch[i] for i in sorted(bad) if i < len(batch)], list(exc.details), exc.error)
    return rejected, [e for i, e in enumerate(batch) if i not in bad]


class _Buffer:
    def __init__(self, max_events: int, on_rejected: Callable[[Rejected], None] | None) -> None:
        self.max_events = max_events
        self.on_rejected = on_rejected
        self.pending: list[dict[str, Any]] = []
        self.rejected: list[Rejected] = []
        self.sent = 0

    def report(self, rejected: Rejected) -> None:
        self.rejected.append(rejected)
        if self.on_rejected is not None:
            self.on_rejected(rejected)


class EventSender(_Buffer):
    """Posts events from a background thread; :meth:`close` (or leaving ``with``) sends what is left."""

    def __init__(
        self,
        send: Callable[[Sequence[Mapping[str, Any]]], Accepted],
        max_events: int = 500,
        max_seconds: float = 1.0,
        on_rejected: Callable[[Rejected], None] | None = None,
    ) -> None:
        super().__init__(max_events, on_rejected)
        self._send = send
        self.max_seconds = max_seconds
        self._wake = threading.Condition()
        self._closed = False
        self._busy = False
        self._urgent = False  # flush() asked: send without waiting for the time limit
        self._thread = threading.Thread(target=self._run, name="freshrec-sender", daemon=True)
        self._thread.start()

    def __enter__(self) -> EventSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, event: Mapping[str, Any]) -> None:
        with self._wake:
            if self._closed:
                raise RuntimeError("the sender is closed")
            self.pending.append(dict(event))
            if len(self.pending) >= self.max_events:
                self._wake.notify()

    def flush(self) -> None:
        """Send everything added so far, now (returns when it is sent or reported)."""
        with self._wake:
            self._urgent = True
            self._wake.notify()
            while self.pending or self._busy:
                self._wake.wait(0.05)

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._wake:
                if not (self._closed or self._urgent) and len(self.pending) < self.max_events:
                    self._wake.wait(self.max_seconds)
                batch, self.pending = self.pending[: self.max_events], self.pending[self.max_events :]
                self._urgent = self._urgent and bool(self.pending)
                done = self._closed and not batch and not self.pending
                self._busy = bool(batch)
            if done:
                return
            if batch:
                self._post(batch)
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()

    def _post(self, batch: list[dict[str, Any]]) -> None:
        while batch:
            try:
                self.sent += self._send(batch).accepted
                return
            except FreshrecError as exc:
                if exc.status == 422 and exc.details:
                    rejected, batch = _split(batch, exc)
                    self.report(rejected)
                    continue
                self.report(Rejected(batch, [], str(exc)))
                return


class AsyncEventSender(_Buffer):
    """The asyncio sender: a task posts the batches; ``await close()`` (or ``async with``) sends the rest."""

    def __init__(
        self,
        send: Callable[[Sequence[Mapping[str, Any]]], Awaitable[Accepted]],
        max_events: int = 500,
        max_seconds: float = 1.0,
        on_rejected: Callable[[Rejected], None] | None = None,
    ) -> None:
        super().__init__(max_events, on_rejected)
        self._send = send
        self.max_seconds = max_seconds
        self._full = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._run())

    async def __aenter__(self) -> AsyncEventSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def add(self, event: Mapping[str, Any]) -> None:
        if self._closed:
            raise RuntimeError("the sender is closed")
        self.pending.append(dict(event))
        if len(self.pending) >= self.max_events:
            self._full.set()

    async def flush(self) -> None:
        while self.pending:
            batch, self.pending = self.pending[: self.max_events], self.pending[self.max_events :]
            await self._post(batch)

    async def close(self) -> None:
        self._closed = True
        self._full.set()
        await self._task
        await self.flush()

    async def _run(self) -> None:
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self.max_seconds)
            self._full.clear()
            await self.flush()

    async def _post(self, batch: list[dict[str, Any]]) -> None:
        while batch:
            try:
                self.sent += (await self._send(batch)).accepted
                return
            except FreshrecError as exc:
                if exc.status == 422 and exc.details:
                    rejected, batch = _split(batch, exc)
                    self.report(rejected)
                    continue
                self.report(Rejected(batch, [], str(exc)))
                return
