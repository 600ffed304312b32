"""Who may do what: API keys grant roles, and every REST route and GraphQL field asks for one role.

The keys come from the settings (``server.read_key``, ``write_key``, ``admin_key``) and from the keys file
(``server.api_keys``, :mod:`freshrec.api.keys`), all in one ring: several keys per role, each with a name.
A role is *open* while no key for it is configured (a server with no keys at all is open to everyone). A
key grants its own role and the roles below it: a write key may also read, an admin key (experiments,
retraining) may also write. The admin role is never more open than writing: without an admin key, it
needs a write key whenever one is configured. The ring holds the SHA-256 of each key; the presented key's
digest is compared with all of them in constant time, so neither the timing nor the order of the keys
tells which one almost matched.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from freshrec.api.keys import KeyEntry, digest, load_key_file
from freshrec.config import ServerSettings
from freshrec.errors import InvalidInput


class Role(enum.Enum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


#: the roles a key of each role also holds
IMPLIES: dict[Role, frozenset[Role]] = {
    Role.READ: frozenset({Role.READ}),
    Role.WRITE: frozenset({Role.READ, Role.WRITE}),
    Role.ADMIN: frozenset({Role.READ, Role.WRITE, Role.ADMIN}),
}
#: the role whose key stands in for a role that has no key of its own
STANDS_IN: dict[Role, Role] = {Role.ADMIN: Role.WRITE}
HOW_TO_SEND = "send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"


@dataclass(frozen=True, slots=True)
class Key:
    """A key of the ring: digest, role, name, and the rate-limit bucket it counts in."""

    digest: bytes
    role: Role
    name: str
    bucket: str


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The configured keys, each with the role it was configured for."""

    keys: tuple[Key, ...]

    @classmethod
    def from_entries(cls, entries: list[KeyEntry]) -> KeyRing:
        return cls(tuple(Key(e.digest, Role(e.role), e.name, "key:" + e.name) for e in entries))

    @classmethod
    def from_settings(cls, server: ServerSettings) -> KeyRing:
        """The settings' keys and the keys file's (raises :class:`~freshrec.api.keys.KeyFileError`)."""
        named = [
            ("read_key", server.read_key),
            ("write_key", server.write_key),
            ("admin_key", server.admin_key),
        ]
        entries = [KeyEntry(digest(key), name.removesuffix("_key"), name) for name, key in named if key]
        if server.api_keys is not None:
            entries += load_key_file(server.api_keys)
        return cls.from_entries(entries)

    def protected(self, role: Role) -> bool:
        """Whether ``role`` needs a key (one was configured for it, or for the role standing in for it)."""
        return self._configured(role) or (role in STANDS_IN and self.protected(STANDS_IN[role]))

    def _configured(self, role: Role) -> bool:
        return any(key.role is role for key in self.keys)

    def _accepted(self, role: Role) -> Role:
        """The role a key must grant to act as ``role``."""
        if role in STANDS_IN and not self._configured(role):
            return self._accepted(STANDS_IN[role])
        return role

    def identify(self, presented: str | None) -> Key | None:
        """The configured key equal to ``presented`` (None for no key or an unknown one)."""
        if presented is None or not self.keys:
            return None
        given = digest(presented)
        found = None
        for key in self.keys:  # no early exit: every key is compared
            if hmac.compare_digest(given, key.digest):
                found = key
        return found

    def roles_of(self, presented: str | None) -> frozenset[Role]:
        """The roles the presented key grants (none for no key or an unknown one)."""
        key = self.identify(presented)
        return frozenset() if key is None else IMPLIES[key.role]

    def require(self, key: Key | None, presented: str | None, needed: Role) -> None:
        """Raise 401 (no or unknown key) or 403 (a key without ``needed``) unless the request may go on."""
        if not self.protected(needed):
            return
        if key is not None:
            roles = IMPLIES[key.role]
            if needed in roles or self._accepted(needed) in roles:
                return
            raise InvalidInput(
                f"forbidden: the API key {key.name!r} has the {key.role.value} role; this needs the "
                f"{needed.value} role",
                status=403,
            )
        if presented is None:
            raise InvalidInput(
                f"missing API key: this needs the {needed.value} role ({HOW_TO_SEND})", status=401
            )
        raise InvalidInput(
            f"unknown API key: the key sent matches no configured key; this needs the {needed.value} role",
            status=401,
        )

    def check(self, presented: str | None, needed: Role) -> None:
        """:meth:`require` for a presented key (401/403 unless the request may go on)."""
        self.require(self.identify(presented), presented, needed)


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key of a request: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    header = headers.get("authorization")
    if header is not None and header[:7].lower() == "bearer ":
        return header[7:].strip()
    return headers.get("x-api-key")
