"""Signing-key options: our key file, keys we used to have, and the notary servers we trust.

Server-Server API, "Retrieving server keys"
(https://spec.matrix.org/v1.19/server-server-api/#retrieving-server-keys):
a server publishes its current ``verify_keys`` and its ``old_verify_keys``
(each with ``expired_ts``) at ``/_matrix/key/v2/server``, valid until
``valid_until_ts``; other servers may fetch them directly or through a
notary (``/_matrix/key/v2/query``). Key IDs are ``ed25519:<version>`` with
the version made of ``[a-zA-Z0-9_]``.

Shapes follow Synapse: ``signing_key_path``, ``old_signing_keys``
(``{"ed25519:id": {key: <base64>, expired_ts: <ms>}}``),
``key_refresh_interval`` and ``trusted_key_servers``
(``[{server_name, verify_keys: {"ed25519:id": <base64>}, accept_keys_insecurely}]``).
"""

import re

import attrs
from signedjson.key import decode_verify_key_bytes
from unpaddedbase64 import decode_base64

from mxref.config.reader import ConfigError, ConfigReader

_KEY_ID = re.compile(r"ed25519:[a-zA-Z0-9_]+")


def _check_verify_key(key: str, key_id: str, value) -> str:
    """Check that ``value`` is an unpadded-base64 ed25519 public key; returns it."""
    if not isinstance(value, str):
        raise ConfigError(key, f"must be an unpadded base64 ed25519 public key, not {value!r}")
    try:
        decode_verify_key_bytes(key_id, decode_base64(value))
    except Exception:
        raise ConfigError(key, f"{value!r} is not an unpadded base64 ed25519 public key")
    return value


def _check_key_id(key: str, key_id) -> str:
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise ConfigError(key, f"{key_id!r} is not a key ID of the form 'ed25519:<version>'")
    return key_id


@attrs.frozen
class OldSigningKeyConfig:
    """A key this server signed with in the past.

    :ivar key_id: e.g. ``"ed25519:a_old"``.
    :ivar key: the public key, unpadded base64.
    :ivar expired_ts: when we stopped using it, in milliseconds since the epoch.
    """

    key_id: str
    key: str
    expired_ts: int


@attrs.frozen
class TrustedKeyServerConfig:
    """A notary server we ask for other servers' keys.

    :ivar server_name: the notary's server name.
    :ivar verify_keys: ``{key_id: unpadded base64 public key}`` the notary's responses must be
        signed with; empty means "whatever key the notary presents".
    :ivar accept_keys_insecurely: accept the notary's keys without ``verify_keys``.
    """

    server_name: str
    verify_keys: tuple = ()
    accept_keys_insecurely: bool = False


@attrs.frozen
class KeyConfig:
    """Signing-key settings.

    :ivar signing_key_path: the Synapse-format key file (``ed25519 <version> <base64 seed>``).
    :ivar old_signing_keys: keys we used to sign with.
    :ivar key_refresh_interval_ms: how long our published keys stay valid (``valid_until_ts - now``).
    :ivar trusted_key_servers: notaries to fetch other servers' keys through.
    """

    signing_key_path: str
    old_signing_keys: tuple = ()
    key_refresh_interval_ms: int = 24 * 60 * 60 * 1000
    trusted_key_servers: tuple = ()

    @classmethod
    def read(cls, reader: ConfigReader, server_name: str) -> "KeyConfig":
        """Read the top-level key options; ``signing_key_path`` defaults to ``<server_name>.signing.key``."""
        signing_key_path = reader.path("signing_key_path", f"{server_name}.signing.key")

        old = []
        old_reader = reader.section("old_signing_keys")
        for key_id, entry in old_reader.data.items():
            _check_key_id(old_reader.key_path(str(key_id)), key_id)
            entry_reader = old_reader.section(key_id)
            old.append(
                OldSigningKeyConfig(
                    key_id=key_id,
                    key=_check_verify_key(
                        entry_reader.key_path("key"), key_id, entry_reader.raw("key", None)
                    ),
                    expired_ts=entry_reader.integer("expired_ts", minimum=0),
                )
            )
            entry_reader.warn_about_unread()

        trusted = []
        for server_reader in reader.sections("trusted_key_servers"):
            verify_keys_reader = server_reader.section("verify_keys")
            verify_keys = []
            for key_id, value in verify_keys_reader.data.items():
                key_path = verify_keys_reader.key_path(str(key_id))
                _check_key_id(key_path, key_id)
                verify_keys.append((key_id, _check_verify_key(key_path, key_id, value)))
            trusted.append(
                TrustedKeyServerConfig(
                    server_name=server_reader.string("server_name"),
                    verify_keys=tuple(verify_keys),
                    accept_keys_insecurely=server_reader.boolean("accept_keys_insecurely", False),
                )
            )
            server_reader.warn_about_unread()

        config = cls(
            signing_key_path=signing_key_path,
            old_signing_keys=tuple(old),
            key_refresh_interval_ms=reader.duration_ms("key_refresh_interval", "1d"),
            trusted_key_servers=tuple(trusted),
        )
        return config
