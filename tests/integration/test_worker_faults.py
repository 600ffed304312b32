"""Two precise worker faults, each against the SQL oracle (see ``support.deployment``):

- a worker paused with SIGSTOP while it applies a batch, for longer than the session timeout: the group moves
  its partitions and the new owner applies the records it held; resumed with SIGCONT, it must not apply
  them a second time (its transaction is fenced by the partitions' applied offsets);
- a worker SIGKILLed right after its state transaction committed and before the group heard of it: the
  records it applied are delivered again and must be skipped.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from support import eventgen
from support.deployment import Deployment, Oracle, deployment, pair_differences, personalized_differences
from support.kafka_broker import KafkaBroker
from support.redis_server import RedisServer

pytestmark = pytest.mark.heavy

#: A ``freshrec worker`` that SIGKILLs itself the first time it is about to commit offsets after a
#: transaction that applied events: the effects are in Redis, the group's offsets are not.
DIES_AFTER_EXEC = """
import os, signal, sys
from freshrec.cli import main
from freshrec.distributed.worker import Worker

commit = Worker.commit_offsets

def commit_or_die(self, consumer):
    if self.stats.events_applied > 0:
        print("killing myself between EXEC and commit", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    commit(self, consumer)

Worker.commit_offsets = commit_or_die
sys.argv = ["freshrec", *sys.argv[1:]]
main()
"""


@pytest.fixture
def servers() -> Iterator[tuple[RedisServer, KafkaBroker]]:
    with RedisServer() as redis, KafkaBroker() as broker:
        yield redis, broker


def shop(seed: int) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    items, events = eventgen.generate(seed=seed, n_users=40, n_items=100, n_events=2400)
    known = {i["item_id"] for i in items}
    return [dict(i) for i in items], [dict(e) for e in events if e["item_id"] in known]


def ready(dep: Deployment, items: list[dict[str, object]], workers: int = 2) -> None:
    dep.start_replica()
    for _ in range(workers):
        dep.start_worker()
    for proc in list(dep.workers):
        dep.wait_for(lambda p=proc: dep.assigned(p), 60, "partitions assigned")  # type: ignore[misc]
    dep.put_items(items)
    dep.wait_for(lambda: dep.catalog_is(items), 60, "the catalog")


def check(dep: Deployment, items: list[dict[str, object]], events: list[dict[str, object]]) -> None:
    oracle = Oracle(items, events)
    applied = dep.settle(oracle.unique)
    assert applied == oracle.unique, f"{applied - oracle.unique} events applied twice"
    assert personalized_differences(dep, oracle) == []
    assert pair_differences(dep, oracle) == []


def test_a_worker_paused_past_its_session_does_not_apply_what_its_successor_applied(
    servers: tuple[RedisServer, KafkaBroker],
) -> None:
    redis, broker = servers
    items, events = shop(21)
    chunks = eventgen.chunks(events, 20)
    with deployment(redis.url, broker.bootstrap, "pause") as dep:
        ready(dep, items)
        sent = 0
        for pause in range(2):
            paused = dep.workers[pause % 2]
            for chunk in chunks[sent : sent + 40]:  # a burst: the worker is paused with a batch in hand
                dep.post_events(chunk)
            sent += 40
            time.sleep(0.3)
            dep.signal(paused, signal.SIGSTOP)
            deadline = time.monotonic() + 6.0  # session timeout 2 s: the group moves its partitions
            while time.monotonic() < deadline and sent < len(chunks):
                dep.post_events(chunks[sent])
                sent += 1
                time.sleep(0.1)
            dep.signal(paused, signal.SIGCONT)  # it resumes with the records it held
            time.sleep(3.0)
        for chunk in chunks[sent:]:
            dep.post_events(chunk)
        check(dep, items, events)
        logs = "".join(dep.output(p) for p in dep.workers)
        assert "Traceback" not in logs, logs[-3000:]


def test_a_worker_killed_between_its_transaction_and_its_commit_counts_nothing_twice(
    servers: tuple[RedisServer, KafkaBroker],
) -> None:
    redis, broker = servers
    items, events = shop(22)
    chunks = eventgen.chunks(events, 40)
    with deployment(redis.url, broker.bootstrap, "exec") as dep:
        ready(dep, items, workers=1)
        deaths = 0
        for round_ in range(3):
            dying = dep.start_worker(script=DIES_AFTER_EXEC)
            dep.wait_for(lambda d=dying: dep.assigned(d), 60, "the dying worker assigned")  # type: ignore[misc]
            part = chunks[round_ * len(chunks) // 3 : (round_ + 1) * len(chunks) // 3]
            for chunk in part:
                dep.post_events(chunk)
            deadline = time.monotonic() + 30
            while dying.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if dying.returncode == -signal.SIGKILL:
                assert "between EXEC and commit" in dep.output(dying)
                deaths += 1
                dep.workers.remove(dying)
        assert deaths >= 2, "the dying workers were given no events to apply"
        check(dep, items, events)
