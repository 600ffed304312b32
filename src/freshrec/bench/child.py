"""Run one measurement in a fresh process, with its progress shown by the parent.

A fresh process per measurement gives each its own clean resident memory (freed Python memory is not
returned to the system, so an earlier step would inflate a later one's bytes per user) and keeps a crash
from taking the whole run down. The child reports through a queue: ``Progress`` messages while it works,
then its result or the error's traceback.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)


class ChildFailed(RuntimeError):
    """A measurement's process raised or died."""


@dataclass
class Reporter:
    """What a measurement calls to report progress: ``step(label, done, total)``."""

    queue: Any

    def step(self, label: str, done: int, total: int) -> None:
        self.queue.put(("progress", label, done, total))


def _main(fn: Callable[..., dict[str, Any]], args: tuple[Any, ...], queue: Any) -> None:
    try:
        queue.put(("result", fn(Reporter(queue), *args)))
    except BaseException:
        queue.put(("error", traceback.format_exc()))


def run_in_child(title: str, fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """``fn(reporter, *args)`` in a spawned process; its progress as bars here; its returned dict."""
    ctx = mp.get_context("spawn")
    queue: Any = ctx.Queue()
    proc = ctx.Process(target=_main, args=(fn, args, queue), daemon=True)
    columns = (
        TextColumn(f"[bold]{title}[/]"),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    tasks: dict[str, Any] = {}
    with Progress(*columns, console=console, transient=False) as bars:
        proc.start()
        try:
            while True:
                try:
                    kind, *payload = queue.get(timeout=1.0)
                except queue_mod.Empty:
                    if not proc.is_alive():
                        raise ChildFailed(f"{title}: the process died (exit code {proc.exitcode})") from None
                    continue
                if kind == "progress":
                    label, done, total = payload
                    if label not in tasks:
                        tasks[label] = bars.add_task(label, total=total)
                    bars.update(tasks[label], completed=done, total=total)
                elif kind == "result":
                    result: dict[str, Any] = payload[0]
                    break
                else:
                    raise ChildFailed(f"{title} failed:\n{payload[0]}")
        finally:
            proc.join(60)
            if proc.is_alive():
                proc.kill()
                proc.join()
    return result
