"""The client registry on SQLite and PostgreSQL: secrets shown once, hashed, rotated, revoked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.oauth.clients import ClientRegistry, oauth_clients
from gateway.oauth.keys import signing_keys
from tests.security.oauth_kit import engine_for

pytestmark = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])


@pytest.fixture
def registry(backend: str, tmp_path: Path) -> Iterator[ClientRegistry]:
    with engine_for(backend, tmp_path) as engine:
        oauth_clients.metadata.create_all(engine, tables=[oauth_clients, signing_keys])
        yield ClientRegistry(engine)


class TestCreateAndAuthenticate:
    def test_generated_secret_authenticates_and_is_not_stored(self, registry: ClientRegistry) -> None:
        client_id, secret = registry.create("Billing app", ["erp.invoices:read", "erp.invoices:write"],
                                            legal_entities=["LE-US01"])
        client = registry.authenticate(client_id, secret)
        assert client is not None
        assert client.scopes == ("erp.invoices:read", "erp.invoices:write")
        assert client.legal_entities == ("LE-US01",)
        assert len(secret) >= 43  # 32 bytes, URL-safe base64
        with registry.engine.connect() as conn:
            stored = conn.execute(sa.select(oauth_clients.c.secret_hash)).scalar_one()
        assert secret not in stored

    def test_wrong_secret_and_unknown_client_fail(self, registry: ClientRegistry) -> None:
        client_id, secret = registry.create("App", ["crm.accounts:read"])
        assert registry.authenticate(client_id, secret + "x") is None
        assert registry.authenticate("nobody", secret) is None

    def test_equal_secrets_get_different_hashes(self, registry: ClientRegistry) -> None:
        a = registry.create("A", [], secret="same-secret-for-both")[0]
        b = registry.create("B", [], secret="same-secret-for-both")[0]
        client_a, client_b = registry.get(a), registry.get(b)
        assert client_a is not None
        assert client_b is not None
        assert client_a.secret_hash != client_b.secret_hash

    def test_unrestricted_client_has_no_legal_entities(self, registry: ClientRegistry) -> None:
        client_id, _ = registry.create("App", ["crm.accounts:read"])
        client = registry.get(client_id)
        assert client is not None
        assert client.legal_entities is None


class TestLifecycle:
    def test_rotate_secret_invalidates_the_old_one(self, registry: ClientRegistry) -> None:
        client_id, old = registry.create("App", ["crm.accounts:read"])
        new = registry.rotate_secret(client_id)
        assert registry.authenticate(client_id, old) is None
        assert registry.authenticate(client_id, new) is not None

    def test_revoked_client_cannot_authenticate(self, registry: ClientRegistry) -> None:
        client_id, secret = registry.create("App", ["crm.accounts:read"])
        registry.revoke(client_id)
        assert registry.authenticate(client_id, secret) is None
        client = registry.get(client_id)
        assert client is not None
        assert client.revoked

    def test_unknown_client_lifecycle_calls_raise(self, registry: ClientRegistry) -> None:
        with pytest.raises(KeyError):
            registry.rotate_secret("nobody")
        with pytest.raises(KeyError):
            registry.revoke("nobody")

    def test_ensure_is_idempotent_and_resets_the_seeded_client(self, registry: ClientRegistry) -> None:
        registry.ensure("demo", "Demo", ["crm.accounts:read"], "demo-secret")
        registry.ensure("demo", "Demo", ["crm.accounts:read"], "demo-secret")
        registry.revoke("demo")
        client = registry.ensure("demo", "Demo app", ["crm.accounts:read", "psa.projects:read"], "new-secret")
        assert client.name == "Demo app"
        assert client.scopes == ("crm.accounts:read", "psa.projects:read")
        assert registry.authenticate("demo", "new-secret") is not None
        assert registry.authenticate("demo", "demo-secret") is None
        with registry.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(oauth_clients)).scalar_one() == 1

    def test_ensure_without_secret_keeps_the_existing_one(self, registry: ClientRegistry) -> None:
        registry.ensure("svc", "Service", ["erp.invoices:read"], None)  # new: a secret nobody knows
        client_id, secret = "svc", registry.rotate_secret("svc")
        client = registry.ensure("svc", "Service", ["erp.invoices:read", "erp.invoices:write"], None)
        assert client.scopes == ("erp.invoices:read", "erp.invoices:write")
        assert registry.authenticate(client_id, secret) is not None

    def test_scope_with_whitespace_is_rejected(self, registry: ClientRegistry) -> None:
        with pytest.raises(ValueError, match="invalid scope"):
            registry.create("App", ["crm.accounts:read crm.accounts:write"])
