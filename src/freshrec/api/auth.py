"""Who may do what: API keys grant roles, and every REST route and GraphQL field asks for one role.

A role is *open* while no key for it is configured (a server with no keys at all is open to everyone). A
key grants its own role and the roles below it: the write key may also read, the admin key (experiments)
may also write. The admin role is never more open than writing: without an admin key, it needs the write
key whenever a write key is configured. Keys are compared in
constant time, all of them on every request, so neither the timing nor the order of the keys tells which
one almost matched.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

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


def _digest(secret: str) -> bytes:
    # equal-length inputs for compare_digest, whatever the length of the key sent
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The configured keys, each with the role it was configured for."""

    keys: tuple[tuple[bytes, Role], ...]

    @classmethod
    def from_settings(cls, server: ServerSettings) -> KeyRing:
        keys = [(server.read_key, Role.READ), (server.write_key, Role.WRITE), (server.admin_key, Role.ADMIN)]
        return cls(tuple((_digest(key), role) for key, role in keys if key is not None))

    def protected(self, role: Role) -> bool:
        """Whether ``role`` needs a key (one was configured for it, or for the role standing in for it)."""
        return self._configured(role) or (role in STANDS_IN and self.protected(STANDS_IN[role]))

    def _configured(self, role: Role) -> bool:
        return any(own is role for _, own in self.keys)

    def _accepted(self, role: Role) -> Role:
        """The role a key must grant to act as ``role``."""
        if role in STANDS_IN and not self._configured(role):
            return self._accepted(STANDS_IN[role])
        return role

    def roles_of(self, presented: str | None) -> frozenset[Role]:
        """The roles the presented key grants (none for no key or an unknown one)."""
        if presented is None:
            return frozenset()
        given = _digest(presented)
        granted: set[Role] = set()
        for digest, role in self.keys:  # no early exit: every key is compared
            if hmac.compare_digest(given, digest):
                granted |= IMPLIES[role]
        return frozenset(granted)

    def check(self, presented: str | None, needed: Role) -> None:
        """Raise 401 (no or unknown key) or 403 (a key without ``needed``) unless the request may go on."""
        if not self.protected(needed):
            return
        roles = self.roles_of(presented)
        if needed in roles or self._accepted(needed) in roles:
            return
        if not roles:
            raise InvalidInput(
                f"missing or wrong API key: this needs the {needed.value} role "
                "(send 'Authorization: Bearer <key>')",
                status=401,
            )
        raise InvalidInput(f"this API key may not {needed.value}: it has no {needed.value} role", status=403)


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key of a request: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    header = headers.get("authorization")
    if header is not None and header[:7].lower() == "bearer ":
        return header[7:].strip()
    return headers.get("x-api-key")


def authorize(headers: Mapping[str, str], server: ServerSettings, needed: Role) -> None:
    """The one role check of every route and GraphQL field; raises :class:`InvalidInput` 401/403."""
    KeyRing.from_settings(server).check(presented_key(headers), needed)
