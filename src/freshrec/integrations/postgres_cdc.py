"""The catalog followed from a PostgreSQL table: a consistent snapshot, then logical replication.

Set-up (:meth:`PostgresCatalog.check`, run before the server starts) refuses with what to run when
``wal_level`` is not ``logical``, the role lacks ``REPLICATION``, the table is missing or its replica identity
does not hold the item id; it creates the publication when absent. The first start creates the slot
(``pgoutput``) on a replication connection and reads the table *in the slot's own snapshot*
(``CREATE_REPLICATION_SLOT ... SNAPSHOT 'use'``), so the snapshot and the changes after it neither overlap
nor leave a gap.

Changes are read with ``pg_logical_slot_peek_binary_changes`` every ``poll_interval_seconds`` (psycopg 3
has no streaming-replication API; a poll every 200 ms keeps a change within a second of its commit) and
decoded by :mod:`freshrec.integrations.pgoutput`. Each transaction becomes catalog journal records (item
upserts stamped with the commit time, deletes), and its last record carries the transaction's end LSN:
the catalog change and the position are durable together, in the same append to the data directory's
log (and later in its snapshots). Only then is the slot advanced. After a crash the slot may hand out
transactions again; those at or below the journaled position are skipped, so nothing is missed or doubled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from freshrec.catalog import ItemIn
from freshrec.config import CatalogPostgresSettings
from freshrec.engine import Engine, items_record
from freshrec.errors import InvalidInput
from freshrec.integrations.catalog_rows import ItemMapping, ValueLoaders
from freshrec.integrations.cdc_setup import check_source
from freshrec.integrations.pgoutput import Decoder, Transaction, lsn_text, parse_lsn
from freshrec.integrations.postgres import SetupError, connect, sql

if TYPE_CHECKING:
    import psycopg

    from freshrec.api.app import Runtime

log = logging.getLogger(__name__)
Op = tuple[str, Any]  # ("put", ItemIn) or ("delete", item_id)


class PostgresCatalog:
    """:class:`freshrec.api.app.Service` keeping the engine's catalog equal to one PostgreSQL table."""

    def __init__(self, settings: CatalogPostgresSettings, engine: Engine) -> None:
        assert settings.dsn is not None
        self.settings = settings
        self.engine = engine
        self.name = f"postgres:{settings.slot}"
        schema, _, table = settings.table.rpartition(".")
        self.schema, self.table = schema or "public", table
        self.conn: psycopg.Connection[Any] | None = None
        self._loaders: ValueLoaders | None = None
        self.confirmed = 0
        self.mapping: ItemMapping | None = None
        self.columns: list[str] = []
        self.metrics: _Metrics | None = None

    # -- set-up -----------------------------------------------------------------------------------------
    def check(self) -> None:
        """Verify the server, role and table (raising :class:`SetupError`), create the publication."""
        self.columns, self.mapping = check_source(self._connection(), self.schema, self.table, self.settings)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"

    def _connection(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed:
            assert self.settings.dsn is not None
            self.conn = connect(self.settings.dsn)
            self._loaders = ValueLoaders(self.conn)
        return self.conn

    @property
    def loaders(self) -> ValueLoaders:
        self._connection()
        assert self._loaders is not None
        return self._loaders

    # -- the snapshot -----------------------------------------------------------------------------------
    def take_snapshot(self) -> tuple[int, list[dict[str, Any]]]:
        """(Re)create the slot and read the table as of the slot's start: ``(consistent LSN, rows)``."""
        conn = self._connection()
        slot = self.settings.slot
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
            [slot],
        )
        assert self.settings.dsn is not None
        replication = connect(self.settings.dsn, replication="database")
        try:
            pq = replication.pgconn  # a walsender speaks only the simple query protocol
            option = "(SNAPSHOT 'use')" if replication.info.server_version >= 150000 else "USE_SNAPSHOT"
            columns = sql.SQL(", ").join(sql.Identifier(c) for c in self.columns)
            select = sql.SQL("SELECT {} FROM {}").format(columns, sql.Identifier(self.schema, self.table))
            steps = [
                "BEGIN ISOLATION LEVEL REPEATABLE READ",
                f'CREATE_REPLICATION_SLOT "{slot}" LOGICAL pgoutput {option}',
                select.as_string(conn),
            ]
            results = []
            for step in steps:
                result = pq.exec_(step.encode())
                if result.error_message:
                    raise SetupError(f"{step}: {result.error_message.decode(errors='replace').strip()}")
                results.append(result)
            pq.exec_(b"COMMIT")
        finally:
            replication.close()
        consistent = results[1].get_value(0, 1)
        assert consistent is not None
        table = results[2]
        oids = [table.ftype(i) for i in range(table.nfields)]
        rows = [
            {
                name: self.loaders.load(oid, table.get_value(r, i))
                for i, (name, oid) in enumerate(zip(self.columns, oids, strict=True))
            }
            for r in range(table.ntuples)
        ]
        return parse_lsn(consistent.decode()), rows

    # -- changes ------------------------------------------------------------------------------------------
    def fetch(self, after: int) -> tuple[list[Transaction], int | None]:
        """Committed transactions the slot holds beyond ``after`` (those up to it were journaled).

        When the slot holds nothing for the table, the second value is a WAL position it may be advanced
        to (the flush position read *before* decoding: every transaction committed before it was decoded
        and none was the table's), so WAL written for other tables is not kept for the slot.
        """
        conn = self._connection()
        flushed = conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()
        rows = conn.execute(
            "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, %s, 'proto_version', '1', "
            "'publication_names', %s)",
            [self.settings.slot, self.settings.max_changes, self.settings.publication],
        ).fetchall()
        decoder = Decoder()  # each call is a new decoding session: relations are described again
        done = [t for t in (decoder.feed(bytes(r[0])) for r in rows) if t is not None]
        idle = parse_lsn(flushed[0]) if flushed is not None and not rows else None
        return [t for t in done if t.end_lsn > after], idle

    def confirm(self, lsn: int) -> None:
        """Let the slot forget everything up to ``lsn`` (it is durable in the data directory)."""
        self._connection().execute(
            "SELECT pg_replication_slot_advance(slot_name, greatest(%s::pg_lsn, confirmed_flush_lsn)) "
            "FROM pg_replication_slots WHERE slot_name = %s",
            [lsn_text(lsn), self.settings.slot],
        )
        self.confirmed = max(self.confirmed, lsn)

    def slot_exists(self) -> bool:
        found = self._connection().execute(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [self.settings.slot]
        )
        return found.fetchone() is not None

    def ops(self, transaction: Transaction, overlay: dict[str, ItemIn | None]) -> list[Op]:
        """The catalog operations of one transaction (``overlay``: items as earlier operations left them)."""
        assert self.mapping is not None
        mapping, catalog = self.mapping, self.engine.catalog

        def previous(item_id: str) -> Mapping[str, Any] | None:
            if item_id in overlay:
                item = overlay[item_id]
                return None if item is None else item.model_dump()
            current = catalog.get(item_id)
            if current is None:
                return None
            vector = self.engine.content.vector_of(item_id)
            fields = {f: getattr(current, f, None) for f in ItemIn.model_fields if f != "embedding"}
            return {**fields, "embedding": None if vector is None else [float(x) for x in vector]}

        out: list[Op] = []
        for change in transaction.changes:
            if change.relation.qualified != self.qualified:
                continue
            if change.kind == "truncate":
                gone = {i.item_id for i in catalog.iter_items() if not i.observed} | set(overlay)
                out.extend(("delete", item_id) for item_id in sorted(gone))
                overlay.update(dict.fromkeys(gone))
                continue
            names = [c.name for c in change.relation.columns]
            oids = [c.type_oid for c in change.relation.columns]
            old = None
            if change.old is not None:
                old = {n: self.loaders.load(o, v) for n, o, v in zip(names, oids, change.old, strict=True)}
            try:
                if change.kind == "delete":
                    assert old is not None
                    item_id = mapping.item_id(old)
                    out.append(("delete", item_id))
                    overlay[item_id] = None
                    continue
                assert change.new is not None
                new = {n: self.loaders.load(o, v) for n, o, v in zip(names, oids, change.new, strict=True)}
                if old is not None and mapping.item_id(old) != mapping.item_id(new):
                    out.append(("delete", mapping.item_id(old)))  # the key changed: the old id leaves
                    overlay[mapping.item_id(old)] = None
                item = mapping.item(new, previous)
            except ValueError as exc:
                self._rejected(f"{change.kind} in {self.qualified} skipped: {exc}")
                continue
            out.append(("put", item))
            overlay[item.item_id] = item
        return out

    def _rejected(self, message: str) -> None:
        log.warning("catalog CDC: %s", message)
        if self.metrics is not None:
            self.metrics.rejected.inc()

    def records(self, transactions: Sequence[Transaction], ops: Sequence[list[Op]]) -> list[dict[str, Any]]:
        """Journal records of the transactions; the last record of each carries its end LSN."""
        out: list[dict[str, Any]] = []
        for transaction, its_ops in zip(transactions, ops, strict=True):
            mine: list[dict[str, Any]] = []
            for kind, value in its_ops:
                if kind == "delete":
                    mine.append({"op": "delete_item", "item_id": value})
                elif mine and mine[-1]["op"] == "items":
                    mine[-1]["items"].append(value.model_dump(exclude_none=True))
                else:
                    mine.append(items_record([value], transaction.commit_time))
            if mine:
                mine[-1]["source"] = {self.name: lsn_text(transaction.end_lsn)}
                out.extend(mine)
        return out

    # -- the service ----------------------------------------------------------------------------------------
    async def run(self, runtime: Runtime) -> None:
        self.metrics = _Metrics(runtime)
        failures = 0
        while True:
            try:
                await self._follow(runtime)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self.metrics.errors.inc()
                wait = min(30.0, 0.5 * 2 ** min(failures, 6))
                log.warning("catalog CDC from %s: %s; retrying in %.1f s", self.qualified, exc, wait)
                self.close()
                await asyncio.sleep(wait)

    async def _follow(self, runtime: Runtime) -> None:
        engine = self.engine
        stored = engine.sources.get(self.name)
        if stored is None or not await asyncio.to_thread(self.slot_exists):
            if stored is not None:
                log.warning("slot %s is gone: a new snapshot of %s", self.settings.slot, self.qualified)
            await asyncio.to_thread(self.check)
            lsn, rows = await asyncio.to_thread(self.take_snapshot)
            assert self.mapping is not None
            items: list[ItemIn] = []
            for row in rows:
                try:
                    items.append(self.mapping.item(row, lambda _: None))
                except ValueError as exc:
                    self._rejected(f"row of {self.qualified} skipped: {exc}")
            record = items_record(await self._prepared(runtime, items), time.time())
            await self._journal(runtime, [{**record, "source": {self.name: lsn_text(lsn)}}])
            log.info("catalog CDC: %d items from %s at %s", len(items), self.qualified, lsn_text(lsn))
        elif self.mapping is None:
            await asyncio.to_thread(self.check)
        while True:
            position = parse_lsn(engine.sources[self.name])
            transactions, idle = await asyncio.to_thread(self.fetch, position)
            if transactions:
                overlay: dict[str, ItemIn | None] = {}
                ops = [self.ops(t, overlay) for t in transactions]
                puts = [value for its in ops for kind, value in its if kind == "put"]
                prepared = iter(await self._prepared(runtime, puts))
                ops = [[(k, next(prepared) if k == "put" else v) for k, v in its] for its in ops]
                await self._journal(runtime, self.records(transactions, ops))
                engine.sources[self.name] = lsn_text(transactions[-1].end_lsn)
                await asyncio.to_thread(self.confirm, transactions[-1].end_lsn)
                assert self.metrics is not None
                self.metrics.applied(sum(map(len, ops)), transactions[-1].commit_time)
                continue
            if idle is not None and idle > max(self.confirmed, position):
                await asyncio.to_thread(self.confirm, idle)
            await asyncio.sleep(self.settings.poll_interval_seconds)

    async def _prepared(self, runtime: Runtime, items: list[ItemIn]) -> list[ItemIn]:
        """Items with embeddings; one whose own vector has the wrong size goes without (and is logged)."""
        try:
            return await runtime.prepare_items(items)
        except InvalidInput:
            out = []
            for item in items:
                try:
                    out.extend(await runtime.prepare_items([item]))
                except InvalidInput as exc:
                    self._rejected(f"item {item.item_id}: {exc}; stored without its embedding")
                    out.extend(await runtime.prepare_items([item.model_copy(update={"embedding": None})]))
            return out

    async def _journal(self, runtime: Runtime, records: list[dict[str, Any]]) -> None:
        """Journal and apply the records exactly as recovery replays them."""
        if not records:
            return

        def apply() -> None:
            for record in records:
                self.engine.apply_record(record)

        async with runtime.write_lock:
            await runtime.journal_and_apply(records, apply)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class _Metrics:
    def __init__(self, runtime: Runtime) -> None:
        from prometheus_client import Counter, Gauge

        registry = runtime.metrics.registry
        self.changes = Counter(
            "freshrec_catalog_cdc_changes", "Catalog changes applied from PostgreSQL.", registry=registry
        )
        self.rejected = Counter(
            "freshrec_catalog_cdc_rejected_rows",
            "Table rows that are not valid items (skipped; see the log).",
            registry=registry,
        )
        self.errors = Counter(
            "freshrec_catalog_cdc_errors", "Failed reads of the slot (retried).", registry=registry
        )
        self.delay = Gauge(
            "freshrec_catalog_cdc_delay_seconds",
            "From the commit in PostgreSQL to the change in the catalog, for the last transaction applied.",
            registry=registry,
        )

    def applied(self, changes: int, commit_time: float) -> None:
        self.changes.inc(changes)
        self.delay.set(max(0.0, time.time() - commit_time))
