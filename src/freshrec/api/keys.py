"""The API keys file of ``freshrec serve --api-keys FILE``: JSON or TOML, each key with a role and a name.

TOML (an array of tables) or JSON (``{"keys": [...]}``, or the array alone)::

    [[keys]]
    name = "storefront"          # optional; shown nowhere but in logs and rate-limit buckets
    role = "read"                # read, write or admin
    key = "a-long-random-secret" # the key itself (16 characters or more) ...

    [[keys]]
    name = "ingest"
    role = "write"
    hash = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"  # ... or its hash

A key given as ``hash`` is the SHA-256 of the key's UTF-8 bytes in hex: the file then holds nothing a
client could send. Every problem names the file, the entry (its number and name, and in TOML its line)
and what is wrong, so a server with a malformed file refuses to start with one clear message.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROLES = ("read", "write", "admin")
#: shortest key accepted in the file (the settings' read_key/write_key/admin_key predate the file)
MIN_KEY_CHARS = 16
_HASH = re.compile(r"sha256:([0-9a-fA-F]{64})")
_FIELDS = {"name", "role", "key", "hash"}


class KeyFileError(ValueError):
    """The keys file cannot be used; the message says where and why."""


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One configured key: its SHA-256 digest, its role and a name to tell it by."""

    digest: bytes
    role: str
    name: str


def digest(secret: str) -> bytes:
    """The SHA-256 of a key (what the ring stores and what ``hash = "sha256:<hex>"`` spells)."""
    return hashlib.sha256(secret.encode()).digest()


def load_key_file(path: Path) -> list[KeyEntry]:
    """The keys of ``path`` (``.json`` is JSON, anything else TOML); raises :class:`KeyFileError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"API keys file {path}: cannot be read: {exc}") from None
    lines: list[int | None]
    if path.suffix.lower() == ".json":
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise KeyFileError(
                f"API keys file {path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
        entries = data.get("keys") if isinstance(data, dict) else data
        lines = []
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise KeyFileError(f"API keys file {path}: not valid TOML: {exc}") from None
        entries = data.get("keys")
        lines = [n for n, line in enumerate(text.splitlines(), 1) if line.strip().startswith("[[keys]]")]
    if isinstance(data, dict) and set(data) - {"keys"}:
        unknown = ", ".join(sorted(set(data) - {"keys"}))
        raise KeyFileError(f"API keys file {path}: unknown top-level field(s) {unknown}; only 'keys' is read")
    if not isinstance(entries, list) or not entries:
        raise KeyFileError(
            f"API keys file {path}: expected a non-empty list of keys "
            '(TOML: [[keys]] tables; JSON: {"keys": [...]})'
        )
    keys = [_entry(path, i, raw, lines[i] if i < len(lines) else None) for i, raw in enumerate(entries)]
    _unique(path, keys)
    return keys


def _entry(path: Path, index: int, raw: Any, line: int | None) -> KeyEntry:
    where = f"entry {index + 1}" + (f" (line {line})" if line is not None else "")
    if not isinstance(raw, dict):
        raise KeyFileError(
            f"API keys file {path}: {where}: expected a table/object, got {type(raw).__name__}"
        )
    name = raw.get("name", f"key-{index + 1}")
    if not isinstance(name, str) or not name.strip():
        raise KeyFileError(f"API keys file {path}: {where}: 'name' must be a non-empty string")
    where += f" {name!r}"

    def fail(problem: str) -> KeyFileError:
        return KeyFileError(f"API keys file {path}: {where}: {problem}")

    unknown = set(raw) - _FIELDS
    if unknown:
        raise fail(f"unknown field(s) {', '.join(sorted(unknown))}; the fields are name, role, key, hash")
    role = raw.get("role")
    if role not in ROLES:
        raise fail(f"'role' is {role!r}; it must be one of read, write, admin")
    secret, hashed = raw.get("key"), raw.get("hash")
    if (secret is None) == (hashed is None):
        raise fail("give exactly one of 'key' (the key) or 'hash' ('sha256:<64 hex digits>')")
    if hashed is not None:
        match = _HASH.fullmatch(hashed) if isinstance(hashed, str) else None
        if match is None:
            raise fail("'hash' must be 'sha256:' followed by 64 hex digits (the SHA-256 of the key)")
        return KeyEntry(bytes.fromhex(match.group(1)), role, name)
    if not isinstance(secret, str) or len(secret) < MIN_KEY_CHARS or secret != secret.strip():
        raise fail(
            f"'key' must be a string of at least {MIN_KEY_CHARS} characters without surrounding spaces"
        )
    return KeyEntry(digest(secret), role, name)


def _unique(path: Path, keys: list[KeyEntry]) -> None:
    names: dict[str, int] = {}
    digests: dict[bytes, str] = {}
    for number, key in enumerate(keys, 1):
        if key.name in names:
            raise KeyFileError(
                f"API keys file {path}: entry {number}: "
                f"the name {key.name!r} is also entry {names[key.name]}'s"
            )
        if key.digest in digests:
            raise KeyFileError(
                f"API keys file {path}: entry {number} {key.name!r}: the same key as {digests[key.digest]!r}"
            )
        names[key.name] = number
        digests[key.digest] = key.name
