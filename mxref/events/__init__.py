"""The pure protocol core: room versions, canonical JSON, hashes, signatures, redaction,
authorization rules, state resolution and the event builder.

Nothing here touches the reactor, the network or the database: plain functions over
plain dicts (events in their federation PDU form), with time passed in as an argument.
This package's names below are mxref's stable public API (``docs/events.md``).
"""

from mxref.errors import AuthError, InvalidEventFormat, SignatureError  # noqa: F401
from mxref.events.authrules import auth_types_for_event, check_auth  # noqa: F401
from mxref.events.builder import build_create_event, build_event  # noqa: F401
from mxref.events.canonical import check_canonical_json, encode_canonical_json  # noqa: F401
from mxref.events.hashing import (  # noqa: F401
    check_content_hash,
    compute_content_hash,
    compute_event_id,
    compute_reference_hash,
    compute_room_id,
)
from mxref.events.redaction import redact, redacted_for_client  # noqa: F401
from mxref.events.room_versions import (  # noqa: F401
    CREATABLE_ROOM_VERSIONS,
    DEFAULT_ROOM_VERSION,
    ROOM_VERSIONS,
    RoomVersion,
    get_room_version,
)
from mxref.events.signing import sign_event, sign_json, verify_event_signatures, verify_json  # noqa: F401
from mxref.events.stateres import resolve_state  # noqa: F401
from mxref.events.validation import validate_pdu_format  # noqa: F401

__all__ = [
    "AuthError",
    "CREATABLE_ROOM_VERSIONS",
    "DEFAULT_ROOM_VERSION",
    "InvalidEventFormat",
    "ROOM_VERSIONS",
    "RoomVersion",
    "SignatureError",
    "auth_types_for_event",
    "build_create_event",
    "build_event",
    "check_auth",
    "check_canonical_json",
    "check_content_hash",
    "compute_content_hash",
    "compute_event_id",
    "compute_reference_hash",
    "compute_room_id",
    "encode_canonical_json",
    "get_room_version",
    "redact",
    "redacted_for_client",
    "resolve_state",
    "sign_event",
    "sign_json",
    "validate_pdu_format",
    "verify_event_signatures",
    "verify_json",
]
