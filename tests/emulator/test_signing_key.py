"""The webhook signing key can be kept in a file, so receivers' cached JWKS stay valid."""

from __future__ import annotations

from pathlib import Path

from tests.servers import Emulator


def test_signing_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "webhook.pem"
    with Emulator({"signing_key_file": key_file}) as first, first.client() as client:
        jwks = client.get("/.well-known/jwks.json").json()
    assert key_file.stat().st_mode & 0o777 == 0o600
    with Emulator({"signing_key_file": key_file}) as second, second.client() as client:
        assert client.get("/.well-known/jwks.json").json() == jwks
    with Emulator() as fresh, fresh.client() as client:
        assert client.get("/.well-known/jwks.json").json() != jwks
