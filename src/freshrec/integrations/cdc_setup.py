"""The checks before catalog CDC starts: what PostgreSQL must allow, with what to run when it does not."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from freshrec.config import CatalogPostgresSettings
from freshrec.integrations.catalog_rows import ItemMapping
from freshrec.integrations.postgres import SetupError, sql

if TYPE_CHECKING:
    import psycopg


def check_source(
    conn: psycopg.Connection[Any], schema: str, table: str, settings: CatalogPostgresSettings
) -> tuple[list[str], ItemMapping]:
    """The table's columns and their mapping; :class:`SetupError` when CDC of the table cannot work.

    Checks ``wal_level``, the role's REPLICATION attribute, the table, that its replica identity holds the
    item id column; creates the publication when absent.
    """
    qualified = f"{schema}.{table}"
    wal_level = conn.execute("SHOW wal_level").fetchone()
    if wal_level is None or wal_level[0] != "logical":
        raise SetupError(
            f"PostgreSQL runs with wal_level = {wal_level[0] if wal_level else '?'}; catalog CDC needs "
            "logical decoding: run `ALTER SYSTEM SET wal_level = logical;` and restart PostgreSQL"
        )
    role = conn.execute(
        "SELECT current_user, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if role is None or not role[1]:
        user = role[0] if role else "?"
        raise SetupError(
            f"role {user} may not use replication slots (it lacks the REPLICATION attribute): "
            f"run `ALTER ROLE {user} REPLICATION;` as a superuser, or connect as a role that has it"
        )
    found = conn.execute(
        "SELECT c.oid, c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
        [schema, table],
    ).fetchone()
    if found is None:
        raise SetupError(f"table {qualified} does not exist (catalog_postgres.table)")
    oid, identity = found
    columns = [
        str(r[0])
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attnum",
            [oid],
        )
    ]
    mapping = ItemMapping(qualified, columns, settings.columns)
    if identity != "f":
        index = "indisprimary" if identity == "d" else "indisreplident"
        keys = {
            str(r[0])
            for r in conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                f"AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s AND i.{index}",
                [oid],
            )
        }
        if mapping.id_column not in keys:
            raise SetupError(
                f"deletes from {qualified} would not say which item went: its replica identity "
                f"({sorted(keys) or 'none'}) does not include {mapping.id_column!r}; make that "
                f"column the primary key, or run `ALTER TABLE {qualified} REPLICA IDENTITY FULL;`"
            )
    _ensure_publication(conn, schema, table, settings.publication)
    return columns, mapping


def _ensure_publication(conn: psycopg.Connection[Any], schema: str, table: str, name: str) -> None:
    """Create publication ``name`` of the table, or check that the existing one publishes it."""
    qualified = f"{schema}.{table}"
    exists = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", [name]).fetchone()
    if exists is None:
        target = sql.Identifier(schema, table)
        statement = sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(sql.Identifier(name), target)
        try:
            conn.execute(statement)
        except Exception as exc:
            raise SetupError(
                f"cannot create publication {name} ({exc}); as the table's owner run "
                f"`{statement.as_string(conn)};`"
            ) from None
        return
    published = conn.execute(
        "SELECT 1 FROM pg_publication_tables WHERE pubname = %s AND schemaname = %s AND tablename = %s",
        [name, schema, table],
    ).fetchone()
    if published is None:
        raise SetupError(
            f"publication {name} does not publish {qualified}: run "
            f"`ALTER PUBLICATION {name} ADD TABLE {qualified};` or name another publication"
        )
