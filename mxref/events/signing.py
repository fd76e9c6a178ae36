"""Signing keys, signed JSON and signed events.

Spec: Appendices, "Signing JSON" ("Signing Details", "Checking for a Signature",
https://spec.matrix.org/v1.19/appendices/#signing-json); Server-Server API,
"Signing Events" ("Adding hashes and signatures to outgoing events",
"Validating hashes and signatures on received events",
https://spec.matrix.org/v1.19/server-server-api/#signing-events) and
"Retrieving server keys"; room version 5's "Signing key validity period"
(https://spec.matrix.org/v1.19/rooms/v5/).

Keys are ``signedjson``/PyNaCl ed25519 keys carrying ``.alg`` and ``.version``
(so their key ID is ``ed25519:<version>``). Signatures are made and checked with
PyNaCl over the bytes of :func:`mxref.events.canonical.encode_canonical_json`,
so that hashing and signing always see the same encoding.

An event is signed by hashing its full content into ``hashes``, redacting a
copy and signing that copy: the signature then survives redaction, while the
content hash tells whether the content was altered or removed.
"""

import io

import nacl.exceptions
import nacl.signing
import signedjson.key

from mxref.errors import InvalidEventFormat, SignatureError
from mxref.events.canonical import encode_canonical_json
from mxref.events.hashing import add_content_hash, decode_base64, encode_unpadded_base64
from mxref.events.redaction import redacted_view
from mxref.events.room_versions import EventFormat, get_room_version

#: The only signing algorithm Matrix defines.
ED25519 = "ed25519"


# --- keys -----------------------------------------------------------------


def generate_signing_key(version: str):
    """Return a new random ed25519 signing key whose key ID is ``ed25519:<version>``."""
    return signedjson.key.generate_signing_key(version)


def decode_signing_key_base64(algorithm: str, version: str, seed_base64: str):
    """Return the signing key for an unpadded base64 32-byte seed.

    :raises ValueError: for an algorithm other than ``ed25519`` or a bad seed.
    """
    return signedjson.key.decode_signing_key_base64(algorithm, version, seed_base64)


def get_verify_key(signing_key):
    """Return the public verify key of ``signing_key``, with the same ``.alg`` and ``.version``."""
    return signedjson.key.get_verify_key(signing_key)


def encode_verify_key_base64(key) -> str:
    """Return the public key as unpadded base64 (as published in ``verify_keys``).

    ``key`` may be a verify key or a signing key; for a signing key its public
    half is encoded, never the secret seed.
    """
    if isinstance(key, nacl.signing.SigningKey):
        key = key.verify_key
    return signedjson.key.encode_verify_key_base64(key)


def decode_verify_key_base64(key_id: str, key_base64: str):
    """Return the verify key for ``key_id`` (``ed25519:<version>``) and its base64 public key.

    :raises ValueError: for an unknown algorithm or a malformed key.
    """
    algorithm, _, version = key_id.partition(":")
    try:
        return signedjson.key.decode_verify_key_base64(algorithm, version, key_base64)
    except (ValueError, TypeError, nacl.exceptions.ValueError) as e:
        raise ValueError(f"bad verify key {key_id}: {e}") from None


def key_id_of(key) -> str:
    """Return the key ID (``<alg>:<version>``) of a signing or verify key.

    :raises ValueError: for a bare PyNaCl key without the ``.version`` that
        ``signedjson`` keys carry.
    """
    version = getattr(key, "version", None)
    if version is None:
        raise ValueError("key has no .version; make it with signedjson or pass its key ID")
    return f"{getattr(key, 'alg', ED25519)}:{version}"


def read_signing_keys(text: str) -> list:
    """Parse a Synapse-format signing key file: one ``ed25519 <version> <seed>`` per line.

    Blank lines are ignored.

    :raises ValueError: naming the line number of a malformed line.
    """
    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    keys = []
    for number, line in lines:
        try:
            keys.extend(signedjson.key.read_signing_keys([line]))
        except (ValueError, TypeError, nacl.exceptions.ValueError) as e:
            raise ValueError(f"signing key file line {number} is malformed: {e}") from None
    return keys


def write_signing_keys(keys) -> str:
    """Return the Synapse-format signing key file text for ``keys`` (one line each)."""
    stream = io.StringIO()
    signedjson.key.write_signing_keys(stream, keys)
    return stream.getvalue()


# --- signed JSON ------------------------------------------------------------


def _signed_bytes(obj: dict, strict: bool = False) -> bytes:
    """The bytes a signature covers: ``obj`` without ``signatures`` and ``unsigned``.

    :param strict: see :func:`mxref.events.canonical.encode_canonical_json`.
    """
    return encode_canonical_json(
        {key: value for key, value in obj.items() if key not in ("signatures", "unsigned")}, strict=strict
    )


def sign_json(obj: dict, server_name: str, signing_key, strict: bool = False) -> dict:
    """Return a copy of ``obj`` signed by ``server_name`` with ``signing_key``.

    The signature is added at ``signatures[server_name]["ed25519:<version>"]``;
    existing signatures and ``unsigned`` are kept. ``obj`` is not modified.
    Does not return a Deferred.

    :param strict: ``obj`` is known to hold no floats (see
        :func:`mxref.events.canonical.encode_canonical_json`).
    """
    signature = signing_key.sign(_signed_bytes(obj, strict)).signature
    signed = dict(obj)
    old = obj.get("signatures")
    signatures = {name: dict(entry) for name, entry in old.items()} if isinstance(old, dict) else {}
    signatures.setdefault(server_name, {})[key_id_of(signing_key)] = encode_unpadded_base64(signature)
    signed["signatures"] = signatures
    return signed


def verify_json(obj: dict, server_name: str, verify_key, key_id: str = None) -> None:
    """Check that ``obj`` carries a valid signature by ``server_name`` with ``verify_key``.

    :param key_id: the key ID to check; by default the key's own
        ``<alg>:<version>``.
    :raises SignatureError: naming the server and key if the signature is
        missing, not base64, or does not verify.
    Does not return a Deferred.
    """
    key_id = key_id or key_id_of(verify_key)
    signatures = obj.get("signatures")
    entry = signatures.get(server_name) if isinstance(signatures, dict) else None
    signature = entry.get(key_id) if isinstance(entry, dict) else None
    if signature is None:
        raise SignatureError(f"missing signature from {server_name} with key {key_id}")
    _check_signature(_signed_bytes(obj), server_name, key_id, signature, verify_key)


def _check_signature(message: bytes, server_name: str, key_id: str, signature, verify_key) -> None:
    """Check one signature over ``message`` (the signed bytes, see :func:`_signed_bytes`)."""
    try:
        signature_bytes = decode_base64(signature)
    except ValueError:
        raise SignatureError(f"signature from {server_name} with key {key_id} is not base64") from None
    try:
        verify_key.verify(message, signature_bytes)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError, TypeError):
        raise SignatureError(f"signature from {server_name} with key {key_id} does not verify") from None


# --- signed events ----------------------------------------------------------


def sign_event(event: dict, server_name: str, signing_key, room_version) -> dict:
    """Return a copy of ``event`` with its content hash and ``server_name``'s signature.

    Follows "Adding hashes and signatures to outgoing events": set
    ``hashes.sha256``, redact a copy with ``room_version``'s algorithm, sign
    the redacted copy, and put its ``signatures`` on the full event.
    ``unsigned`` is kept as it was. ``event`` is not modified.

    :param room_version: a :class:`RoomVersion` or its identifier.
    Does not return a Deferred.
    """
    hashed = add_content_hash(event)
    version = get_room_version(room_version)
    signed_copy = sign_json(
        redacted_view(hashed, version), server_name, signing_key, strict=version.strict_canonical_json
    )
    hashed["signatures"] = signed_copy["signatures"]
    return hashed


def required_signature_servers(event: dict, room_version) -> set:
    """Return the server names whose signatures ``event`` must carry.

    * the server of ``sender``;
    * room versions 1 and 2: also the server in ``event_id``;
    * rooms with restricted joins (v8+): for a ``join`` member event with
      ``content.join_authorised_via_users_server``, also that user's server.

    Invites made over federation also carry the invitee's server's signature;
    the code receiving the invite checks that separately.

    :raises InvalidEventFormat: if an identifier it needs is not of the form
        ``<sigil>localpart:server``.
    """
    version = get_room_version(room_version)
    servers = {_server_of(event.get("sender"), "sender")}
    if version.event_format is EventFormat.V1:
        servers.add(_server_of(event.get("event_id"), "event_id"))
    content = event.get("content")
    if (
        version.restricted_join_rule
        and event.get("type") == "m.room.member"
        and isinstance(content, dict)
        and content.get("membership") == "join"
        and "join_authorised_via_users_server" in content
    ):
        servers.add(
            _server_of(content["join_authorised_via_users_server"], "join_authorised_via_users_server")
        )
    return servers


def _server_of(identifier, field: str) -> str:
    """The server name of ``@user:server`` or ``$event:server``."""
    if not isinstance(identifier, str) or ":" not in identifier:
        raise InvalidEventFormat(f"{field} {identifier!r} does not name a server")
    server = identifier.split(":", 1)[1]
    if not server:
        raise InvalidEventFormat(f"{field} {identifier!r} does not name a server")
    return server


def verify_event_signatures(event: dict, room_version, key_lookup) -> None:
    """Check the signatures on a received event ("Validating hashes and signatures").

    The event is redacted with ``room_version``'s algorithm, so a full event
    and its redacted copy verify alike. For each server from
    :func:`required_signature_servers`:

    1. its entry in ``signatures`` must exist and name at least one ``ed25519``
       key (key IDs of unknown algorithms are ignored);
    2. each key is looked up with ``key_lookup(server_name, key_id)``, which
       returns a verify key, a ``(verify_key, valid_until_ts)`` tuple, or
       ``None`` when the key is unknown. Unknown keys are skipped; so, in room
       versions that enforce key validity (v5+), are keys whose
       ``valid_until_ts`` is before the event's ``origin_server_ts``;
    3. every remaining signature must verify, and at least one must remain.

    The content hash is not checked here (see
    :func:`mxref.events.hashing.check_content_hash`).

    :param room_version: a :class:`RoomVersion` or its identifier.
    :param key_lookup: a synchronous callable as described above.
    :raises SignatureError: naming the server (and key, when one failed).
    :raises InvalidEventFormat: when a required signer cannot be worked out.
    Does not return a Deferred.
    """
    version = get_room_version(room_version)
    message = _signed_bytes(redacted_view(event, version), strict=version.strict_canonical_json)
    origin_server_ts = event.get("origin_server_ts")
    signatures = event.get("signatures")
    if not isinstance(signatures, dict):
        signatures = {}
    for server_name in sorted(required_signature_servers(event, version)):
        entry = signatures.get(server_name)
        if not isinstance(entry, dict):
            raise SignatureError(f"event has no signature from {server_name}")
        key_ids = sorted(key_id for key_id in entry if key_id.startswith(ED25519 + ":"))
        if not key_ids:
            raise SignatureError(f"event has no ed25519 signature from {server_name}")
        verified = 0
        for key_id in key_ids:
            found = key_lookup(server_name, key_id)
            if found is None:
                continue
            if isinstance(found, tuple):
                verify_key, valid_until_ts = found
            else:
                verify_key, valid_until_ts = found, None
            if (
                version.enforce_key_validity
                and valid_until_ts is not None
                and isinstance(origin_server_ts, int)
                and valid_until_ts < origin_server_ts
            ):
                continue
            _check_signature(message, server_name, key_id, entry[key_id], verify_key)
            verified += 1
        if not verified:
            raise SignatureError(
                f"no known, valid key of {server_name} to check its signature (key IDs: {', '.join(key_ids)})"
            )
