"""This server's ed25519 signing key: reading it, creating it on first run, and our old keys.

Server-Server API, "Retrieving server keys"
(https://spec.matrix.org/v1.19/server-server-api/#retrieving-server-keys) and
Appendices, "Signing JSON" (https://spec.matrix.org/v1.19/appendices/#signing-json):
a homeserver signs events and federation requests with ed25519 keys
identified as ``ed25519:<version>``, where the version is made of
``[a-zA-Z0-9_]``. Keys it no longer uses are published as
``old_verify_keys`` with the time they expired.

The key file has Synapse's format, one key per line::

    ed25519 a_AbCd <unpadded base64 of the 32-byte seed>

so a Synapse server's key file can be used unchanged (and must be, to keep
its identity when migrating).
"""

import os
import secrets
import string

import attrs
from signedjson.key import (
    decode_verify_key_bytes,
    generate_signing_key,
    read_signing_keys,
    write_signing_keys,
)
from twisted.logger import Logger
from unpaddedbase64 import decode_base64

from mxref.config.reader import ConfigError

log = Logger()

_VERSION_CHARACTERS = string.ascii_letters + string.digits


def new_key_version() -> str:
    """A fresh key version: ``a_`` and four random letters or digits (Synapse's style)."""
    return "a_" + "".join(secrets.choice(_VERSION_CHARACTERS) for _ in range(4))


def load_signing_key(path: str):
    """Read the first key of the Synapse-format key file at ``path``.

    :returns: a ``nacl.signing.SigningKey`` with ``alg`` and ``version`` attributes
        (signedjson's signing key).
    :raises ConfigError: naming ``signing_key_path`` if the file is missing or malformed.
    """
    try:
        with open(path, encoding="utf-8") as f:
            keys = read_signing_keys(line for line in f if line.strip())
    except OSError as e:
        raise ConfigError("signing_key_path", f"cannot read {path}: {e.strerror}")
    except Exception as e:
        raise ConfigError("signing_key_path", f"{path} is not a signing key file ({e})")
    if not keys:
        raise ConfigError("signing_key_path", f"{path} holds no key")
    return keys[0]


def write_new_signing_key(path: str, version: str | None = None):
    """Generate a new ed25519 key and write it to ``path`` (readable by the owner only).

    :param path: the key file to create; it must not exist.
    :param version: the key version; ``a_`` and four random characters when ``None``.
    :returns: the new signing key.
    """
    key = generate_signing_key(version or new_key_version())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        write_signing_keys(f, [key])
    return key


def load_or_generate_signing_key(path: str):
    """Read the key at ``path``, creating a new one first if the file does not exist.

    :returns: ``(signing_key, generated)``; ``generated`` is true when a key was written.
    :raises ConfigError: naming ``signing_key_path`` if an existing file is unreadable.
    """
    if os.path.exists(path):
        return load_signing_key(path), False
    key = write_new_signing_key(path)
    log.info(
        "generated a new signing key ed25519:{version} at {path}", version=key.version, path=path
    )
    return key, True


def key_id(signing_key) -> str:
    """The key ID of a signedjson key, e.g. ``"ed25519:a_AbCd"``."""
    return f"{signing_key.alg}:{signing_key.version}"


@attrs.frozen
class OldVerifyKey:
    """A public key we used to sign with, as published in ``old_verify_keys``.

    :ivar verify_key: the ``nacl.signing.VerifyKey`` (with signedjson's ``alg``/``version``).
    :ivar expired_ts: when it stopped being used, in milliseconds since the epoch.
    """

    verify_key: object
    expired_ts: int


def old_verify_keys(key_config) -> dict:
    """Our old keys from the ``old_signing_keys`` option.

    :param key_config: a :class:`mxref.config.keys.KeyConfig`.
    :returns: ``{key_id: OldVerifyKey}``.
    """
    result = {}
    for old in key_config.old_signing_keys:
        verify_key = decode_verify_key_bytes(old.key_id, decode_base64(old.key))
        result[old.key_id] = OldVerifyKey(verify_key=verify_key, expired_ts=old.expired_ts)
    return result
