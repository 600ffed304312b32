"""Feature views upserted into PostgreSQL tables, in the background of the server.

The engine tells the sink which users and items each applied batch of events touched
(:attr:`freshrec.engine.Engine.listeners`); every ``flush_interval_seconds`` the sink reads the current
rows of those keys through the views' own ``rows`` (the ``/v1/views`` code path) and writes them, a batch
of keys per transaction: the rows are upserted (``INSERT ... ON CONFLICT (key) DO UPDATE``, skipping rows
that did not change) and the key's rows that the view no longer has are deleted. A write is repeatable:
writing the same rows again changes nothing, so a failed write is retried with the same keys and delivery
is at least once with exactly-once effects.

At start-up, and then every ``full_sync_every_seconds``, every row is written and every table row the view
does not have is deleted: that brings in what changed while the sink was not running (the set of touched
keys lives in memory) and removes rows that left by time alone (expired windows).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from freshrec.config import FeatureSinkSettings
from freshrec.engine import Engine
from freshrec.events import Event
from freshrec.integrations.feature_tables import chosen_tables
from freshrec.integrations.postgres import SetupError, connect, sql

if TYPE_CHECKING:
    import psycopg

    from freshrec.api.app import Runtime

log = logging.getLogger(__name__)


class PostgresFeatureSink:
    """:class:`freshrec.api.app.Service` keeping one PostgreSQL table per chosen view equal to it."""

    def __init__(self, settings: FeatureSinkSettings, engine: Engine) -> None:
        assert settings.dsn is not None
        self.settings = settings
        self.engine = engine
        self.tables = chosen_tables(engine.settings, settings.views)
        #: per view: key -> when it was first touched since written (insertion order = oldest first)
        self.pending: dict[str, dict[str, float]] = {v: {} for v in self.tables}
        self.in_flight: dict[str, tuple[int, float]] = {}  # view -> (keys, oldest touch) being written
        self.conn: psycopg.Connection[Any] | None = None
        self.staged: set[str] = set()
        self.full_syncs = 0
        engine.listeners.append(self.touched)

    def table(self, view: str) -> sql.Composed:
        name = f"{self.settings.table_prefix}{view}"
        return sql.SQL("{}").format(sql.Identifier(self.settings.pg_schema, name))

    # -- set-up -----------------------------------------------------------------------------------------
    def check(self) -> None:
        """Create the schema and tables when missing; refuse a table whose columns differ."""
        conn = self._connection()
        schema = self.settings.pg_schema
        if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone() is None:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for view, spec in self.tables.items():
            conn.execute(spec.ddl(self.table(view)))
            name = f"{self.settings.table_prefix}{view}"
            found = [
                str(r[0])
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                    "AND table_name = %s ORDER BY ordinal_position",
                    [schema, name],
                )
            ]
            wanted = [*spec.names, "as_of"]
            if found != wanted:
                raise SetupError(
                    f"table {schema}.{name} has columns {found}; the sink writes {wanted}: drop it (it is "
                    "rebuilt from the view) or set another feature_sink.table_prefix"
                )

    def _connection(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed:
            assert self.settings.dsn is not None
            self.conn = connect(self.settings.dsn)
            self.staged = set()
        return self.conn

    def _stage(self, conn: psycopg.Connection[Any], view: str) -> sql.Identifier:
        """The connection's temporary table rows of ``view`` are staged in (emptied at each commit)."""
        stage = sql.Identifier(f"stage_{view}")
        if view not in self.staged:
            conn.execute(
                sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DELETE ROWS").format(
                    stage, self.table(view)
                )
            )
            if not self.staged:
                conn.execute("CREATE TEMP TABLE stage_keys (key text) ON COMMIT DELETE ROWS")
            self.staged.add(view)
        return stage

    # -- what changed -------------------------------------------------------------------------------------
    def touched(self, events: Sequence[Event]) -> None:
        """The engine's listener: the users and items of an applied batch have new rows to write."""
        now = time.time()
        users = {e.user_id for e in events}
        items = {e.item_id for e in events}
        for view, spec in self.tables.items():
            pending = self.pending[view]
            for key in users if spec.keyed_by == "user_id" else items:
                pending.setdefault(key, now)

    def pending_keys(self, view: str) -> int:
        return len(self.pending[view]) + self.in_flight.get(view, (0, 0.0))[0]

    def lag_seconds(self, view: str) -> float:
        """Age of the oldest change not yet written (0 when everything is written)."""
        oldest = [t for t in (next(iter(self.pending[view].values()), None),) if t is not None]
        if view in self.in_flight:
            oldest.append(self.in_flight[view][1])
        return max(0.0, time.time() - min(oldest)) if oldest else 0.0

    # -- writing --------------------------------------------------------------------------------------------
    def write(self, view: str, keys: list[str] | None, rows: list[tuple[Any, ...]]) -> tuple[int, int]:
        """Upsert ``rows`` and delete the rows of ``keys`` (every key when None) not among them.

        Returns (rows inserted or changed, rows deleted). One transaction: repeatable, all or nothing.
        """
        spec = self.tables[view]
        conn = self._connection()
        table, stage = self.table(view), self._stage(conn, view)
        columns = sql.SQL(", ").join(map(sql.Identifier, [*spec.names, "as_of"]))
        same_key = sql.SQL(" AND ").join(sql.SQL("s.{0} = t.{0}").format(sql.Identifier(k)) for k in spec.key)
        values = [*spec.values, "as_of"]
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, columns)) as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(
                sql.SQL(
                    "INSERT INTO {table} AS t SELECT * FROM {stage} ON CONFLICT ({key}) DO UPDATE SET "
                    "{sets} WHERE ({old}) IS DISTINCT FROM ({new})"
                ).format(
                    table=table,
                    stage=stage,
                    key=sql.SQL(", ").join(map(sql.Identifier, spec.key)),
                    sets=sql.SQL(", ").join(
                        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in values
                    ),
                    old=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in spec.values),
                    new=sql.SQL(", ").join(
                        sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in spec.values
                    ),
                )
            )
            upserted = cur.rowcount
            gone = sql.SQL("NOT EXISTS (SELECT 1 FROM {} s WHERE {})").format(stage, same_key)
            if keys is None:
                cur.execute(sql.SQL("DELETE FROM {} t WHERE {}").format(table, gone))
            else:
                with cur.copy("COPY stage_keys (key) FROM STDIN") as copy:
                    for key in keys:
                        copy.write_row((key,))
                cur.execute(
                    sql.SQL("DELETE FROM {} t WHERE t.{} IN (SELECT key FROM stage_keys) AND {}").format(
                        table, sql.Identifier(spec.keyed_by), gone
                    )
                )
            deleted = cur.rowcount
        return upserted, deleted

    async def flush(self) -> None:
        """Write the rows of every touched key, ``batch_keys`` keys per transaction."""
        for view in self.tables:
            while self.pending[view]:
                pending = self.pending[view]
                keys = list(pending)[: self.settings.batch_keys]
                taken = {k: pending.pop(k) for k in keys}
                await self._write(view, keys, taken)

    async def full_sync(self) -> None:
        """Write every row of every view and delete every table row the view does not have."""
        for view in self.tables:
            taken, self.pending[view] = self.pending[view], {}
            await self._write(view, None, taken)
        self.full_syncs += 1

    async def _write(self, view: str, keys: list[str] | None, taken: dict[str, float]) -> None:
        spec = self.tables[view]
        as_of = self.engine.now()
        if keys is None:
            rows = [spec.row(r, as_of) for r in self.engine.view_rows(view)]
        else:
            rows = [spec.row(r, as_of) for k in keys for r in self.engine.view_rows(view, k)]
        self.in_flight[view] = (len(taken), min(taken.values(), default=time.time()))
        try:
            upserted, deleted = await asyncio.to_thread(self.write, view, keys, rows)
        except BaseException:
            # put the keys back in front (oldest first) to be written again
            self.pending[view] = {**taken, **self.pending[view]}
            raise
        finally:
            self.in_flight.pop(view, None)
        if self.metrics is not None:
            self.metrics.upserted.labels(view).inc(upserted)
            self.metrics.deleted.labels(view).inc(deleted)

    # -- the service ----------------------------------------------------------------------------------------
    metrics: _Metrics | None = None

    async def run(self, runtime: Runtime) -> None:
        self.metrics = _Metrics(runtime, self)
        every = self.settings.full_sync_every_seconds
        last_full: float | None = None
        failures = 0
        while True:
            try:
                if last_full is None or (every > 0 and time.monotonic() - last_full >= every):
                    await self.full_sync()
                    last_full = time.monotonic()
                else:
                    await self.flush()
                failures = 0
                await asyncio.sleep(self.settings.flush_interval_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self.metrics.errors.inc()
                wait = min(30.0, 0.5 * 2 ** min(failures, 6))
                log.warning("feature sink: %s; retrying in %.1f s", exc, wait)
                self.close()
                await asyncio.sleep(wait)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class _Metrics:
    def __init__(self, runtime: Runtime, sink: PostgresFeatureSink) -> None:
        from prometheus_client import Counter, Gauge

        registry = runtime.metrics.registry
        self.upserted = Counter(
            "freshrec_feature_sink_rows_upserted",
            "Rows inserted or changed in the feature tables.",
            ["view"],
            registry=registry,
        )
        self.deleted = Counter(
            "freshrec_feature_sink_rows_deleted",
            "Rows deleted from the feature tables (the view no longer has them).",
            ["view"],
            registry=registry,
        )
        self.errors = Counter("freshrec_feature_sink_errors", "Failed writes (retried).", registry=registry)
        lag = Gauge(
            "freshrec_feature_sink_lag_seconds",
            "Age of the oldest view change not yet in its table.",
            ["view"],
            registry=registry,
        )
        pending = Gauge(
            "freshrec_feature_sink_pending_keys",
            "Users or items whose changed rows are not yet in the table.",
            ["view"],
            registry=registry,
        )
        syncs = Gauge(
            "freshrec_feature_sink_full_syncs",
            "Full rewrites done since the start (the first one at start-up).",
            registry=registry,
        )
        syncs.set_function(lambda: float(sink.full_syncs))
        for view in sink.tables:
            lag.labels(view).set_function(_bound(sink.lag_seconds, view))
            pending.labels(view).set_function(_bound(lambda v: float(sink.pending_keys(v)), view))


def _bound(function: Callable[[str], float], view: str) -> Callable[[], float]:
    return lambda: function(view)
