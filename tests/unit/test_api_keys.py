"""The keys file (``server.api_keys``, ``serve --api-keys FILE``): roles, problems, the HTTP answers."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from freshrec.api import create_app
from freshrec.api.auth import KeyRing, Role
from freshrec.api.guard import exposure_warning
from freshrec.api.keys import KeyFileError
from freshrec.cli import main
from freshrec.config import ServerSettings, load_settings
from freshrec.engine import Engine

ITEM = {"item_id": "a", "title": "A page", "category": "books"}


STOREFRONT = "storefront-0123456789"
INGEST = "ingest-key-0123456789"
OPS = "ops-admin-key-0123456789"
KEYS_TOML = f"""
[[keys]]
name = "storefront"
role = "read"
key = "{STOREFRONT}"

[[keys]]
name = "ingest"
role = "write"
hash = "sha256:{hashlib.sha256(INGEST.encode()).hexdigest()}"

[[keys]]
name = "ops"
role = "admin"
key = "{OPS}"

[[keys]]
name = "second-reader"
role = "read"
key = "another-reader-key-01"
"""


def test_a_keys_file_grants_its_roles_plain_and_hashed(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(KEYS_TOML)
    ring = KeyRing.from_settings(ServerSettings(api_keys=path, read_key="r-secret"))
    assert ring.roles_of(STOREFRONT) == {Role.READ}
    assert ring.roles_of("another-reader-key-01") == {Role.READ}
    assert ring.roles_of(INGEST) == {Role.READ, Role.WRITE}
    assert ring.roles_of(OPS) == {Role.READ, Role.WRITE, Role.ADMIN}
    assert ring.roles_of("r-secret") == {Role.READ}  # the settings' keys are entries of the same ring
    hashed = f"sha256:{hashlib.sha256(INGEST.encode()).hexdigest()}"
    assert ring.roles_of(hashed) == frozenset()  # the hash itself is no key
    key = ring.identify(INGEST)
    assert key is not None and key.name == "ingest"


def test_the_same_keys_as_json(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    entries = [{"role": "write", "key": INGEST}, {"name": "ops", "role": "admin", "key": OPS}]
    path.write_text(json.dumps({"keys": entries}))
    ring = KeyRing.from_settings(ServerSettings(api_keys=path))
    assert ring.roles_of(INGEST) == {Role.READ, Role.WRITE}
    assert [k.name for k in ring.keys] == ["key-1", "ops"]
    path.write_text(json.dumps(entries))  # the list alone
    assert len(KeyRing.from_settings(ServerSettings(api_keys=path)).keys) == 2


@pytest.mark.parametrize(
    ("text", "suffix", "expected"),
    [
        ('[[keys]]\nrole = "read"\nkey = "short"\n', ".toml", "entry 1 (line 1) 'key-1': 'key' must be"),
        (
            '[[keys]]\nrole = "read"\nkey = "0123456789abcdefgh"\n\n[[keys]]\nrole = "reader"\nkey = "x"\n',
            ".toml",
            "entry 2 (line 5) 'key-2': 'role' is 'reader'; it must be one of read, write, admin",
        ),
        (
            '[[keys]]\nrole = "read"\nhash = "md5:abc"\n',
            ".toml",
            "'hash' must be 'sha256:' followed by 64 hex",
        ),
        (
            '[[keys]]\nrole = "read"\nkey = "0123456789abcdefgh"\nhash = "sha256:00"\n',
            ".toml",
            "give exactly one of 'key'",
        ),
        ('[[keys]]\nrole = "read"\nsecret = "x"\n', ".toml", "unknown field(s) secret"),
        ('[[keys]\nrole = "read"\n', ".toml", "not valid TOML"),
        ('{"keys": [{"role": "read", "key": "0123456789abcdefgh"},]}', ".json", "not valid JSON at line 1"),
        ('{"keys": []}', ".json", "expected a non-empty list of keys"),
        ('{"key": []}', ".json", "unknown top-level field(s) key"),
        (
            '[{"name": "a", "role": "read", "key": "0123456789abcdefgh"},'
            ' {"name": "a", "role": "write", "key": "0123456789abcdefgi"}]',
            ".json",
            "entry 2: the name 'a' is also entry 1's",
        ),
        (
            '[{"name": "a", "role": "read", "key": "0123456789abcdefgh"},'
            ' {"name": "b", "role": "write", "key": "0123456789abcdefgh"}]',
            ".json",
            "entry 2 'b': the same key as 'a'",
        ),
    ],
)
def test_a_malformed_keys_file_says_where_and_what(
    tmp_path: Path, text: str, suffix: str, expected: str
) -> None:
    path = tmp_path / f"keys{suffix}"
    path.write_text(text)
    with pytest.raises(KeyFileError) as refused:
        KeyRing.from_settings(ServerSettings(api_keys=path))
    assert str(path) in str(refused.value)
    assert expected in str(refused.value)


def test_serve_refuses_a_malformed_keys_file_before_starting(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    path.write_text('[[keys]]\nrole = "root"\nkey = "0123456789abcdefgh"\n')
    result = CliRunner().invoke(main, ["serve", "--ephemeral", "--api-keys", str(path)])
    assert result.exit_code == 1
    assert "entry 1 (line 1) 'key-1': 'role' is 'root'" in result.output


def test_serving_on_a_public_address_without_keys_warns() -> None:
    empty = KeyRing.from_entries([])
    for host in ("0.0.0.0", "192.168.1.20", "::", "shop.example"):
        warning = exposure_warning(host, empty)
        assert warning is not None and host in warning and "--api-keys" in warning
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert exposure_warning(host, empty) is None
    assert exposure_warning("0.0.0.0", KeyRing.from_settings(ServerSettings(read_key="r"))) is None


def file_keys_app(tmp_path: Path, **server: Any) -> tuple[Engine, Any]:
    path = tmp_path / "keys.toml"
    path.write_text(KEYS_TOML)
    settings = load_settings(
        server={"api_keys": str(path), **server}, embeddings={"model": "none"}, cf={"enabled": False}
    )
    engine = Engine(settings)
    engine.upsert_items([ITEM])
    return engine, create_app(engine)


def test_file_keys_over_http_with_clear_problems(tmp_path: Path) -> None:
    engine, app = file_keys_app(tmp_path)

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://freshrec.test") as client:
            missing = await client.get("/v1/trending")
            assert missing.status_code == 401
            assert missing.json()["error"].startswith("missing API key: this needs the read role")
            unknown = await client.get("/v1/trending", headers={"authorization": "Bearer nope"})
            assert unknown.status_code == 401
            assert unknown.json()["error"].startswith("unknown API key")
            event = {"user_id": "u", "item_id": "a", "type": "click"}
            small = await client.post("/v1/events", json=event, headers={"x-api-key": STOREFRONT})
            assert small.status_code == 403
            assert small.json()["error"] == (
                "forbidden: the API key 'storefront' has the read role; this needs the write role"
            )
            assert engine.applied_events == 0
            ok = await client.post("/v1/events", json=event, headers={"authorization": f"Bearer {INGEST}"})
            assert ok.status_code == 202
            # retraining is admin: the ingest key may not, the ops key may (CF is disabled here: 409)
            assert (await client.post("/v1/admin/train", headers={"x-api-key": INGEST})).status_code == 403
            assert (await client.post("/v1/admin/train", headers={"x-api-key": OPS})).status_code == 409
            assert (await client.get("/health")).status_code == 200
            assert (await client.get("/metrics")).status_code == 200  # open by default
            document = (await client.get("/openapi.json")).json()
            assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}
            train = document["paths"]["/v1/admin/train"]["post"]
            assert train["x-freshrec-role"] == "admin"
            assert train["security"] == [{"bearer": []}, {"apiKey": []}]

    asyncio.run(main())


@pytest.mark.parametrize(("role", "allowed"), [("read", STOREFRONT), ("admin", OPS)])
def test_metrics_protection_is_configurable(tmp_path: Path, role: str, allowed: str) -> None:
    _, app = file_keys_app(tmp_path, metrics_role=role)

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://freshrec.test") as client:
            assert (await client.get("/metrics")).status_code == 401
            assert (await client.get("/metrics", headers={"x-api-key": allowed})).status_code == 200
            if role == "admin":
                assert (await client.get("/metrics", headers={"x-api-key": INGEST})).status_code == 403

    asyncio.run(main())
