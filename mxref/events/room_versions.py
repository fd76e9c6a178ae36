"""The table of room versions 1 to 12 and the features in which they differ.

Spec: "Room Versions" (https://spec.matrix.org/v1.19/rooms/) and each
version's page (``/rooms/v1/`` ... ``/rooms/v12/``). Every algorithm in
:mod:`mxref.events` asks a :class:`RoomVersion` which behaviour applies rather
than comparing version strings, so adding a version means adding one row here.
"""

import enum

import attr


class EventFormat(enum.Enum):
    """How event IDs are made and how ``prev_events``/``auth_events`` look."""

    #: v1, v2: ``$opaque:origin`` chosen by the sender and sent as ``event_id``;
    #: references are ``[event_id, {"sha256": ...}]`` pairs.
    V1 = 1
    #: v3: ``$`` + unpadded standard base64 of the reference hash; plain ID lists.
    V2 = 2
    #: v4 onwards: ``$`` + unpadded URL-safe base64 of the reference hash.
    V3 = 3


class StateResolution(enum.Enum):
    """Which state resolution algorithm the room version uses."""

    V1 = "v1"
    V2 = "v2"
    #: Room version 12: starts from an empty map and adds the conflicted subgraph.
    V2_1 = "v2.1"


class RedactionRules(enum.Enum):
    """Which redaction algorithm the room version uses (named by the first version that used it)."""

    V1 = 1  # rooms v1-v5: m.room.aliases content is protected
    V6 = 6  # rooms v6-v7: m.room.aliases no longer protected
    V8 = 8  # room v8: join_rules keeps "allow"
    V9 = 9  # rooms v9-v10: member keeps "join_authorised_via_users_server"
    V11 = 11  # rooms v11-v12: fewer top-level keys; create keeps all content; ...


@attr.s(frozen=True, slots=True, auto_attribs=True)
class RoomVersion:
    """One room version and the rules that differ between versions.

    Attributes read as questions: ``version.knock_join_rule`` is "does this
    version know the ``knock`` join rule?".
    """

    #: The version string as it appears in ``m.room.create`` content.
    identifier: str
    event_format: EventFormat
    state_resolution: StateResolution
    redaction_rules: RedactionRules
    #: v1, v2: a redaction is allowed when the redacted event's ID domain
    #: matches the redaction's sender domain (auth rule 11 of v1).
    special_case_redaction_auth: bool
    #: v1-v5: ``m.room.aliases`` state_key must equal the sender's domain (auth rule 4).
    special_case_aliases_auth: bool
    #: v5+: signing keys' ``valid_until_ts`` must cover ``origin_server_ts``.
    enforce_key_validity: bool
    #: v6+: strict canonical JSON (no floats, integers within +-(2**53-1)).
    strict_canonical_json: bool
    #: v6+: ``notifications`` power levels are protected like ``events``.
    limit_notifications_power_levels: bool
    #: v7+: membership ``knock`` and join rule ``knock``.
    knock_join_rule: bool
    #: v8+: join rule ``restricted`` and ``join_authorised_via_users_server``.
    restricted_join_rule: bool
    #: v10+: join rule ``knock_restricted``.
    knock_restricted_join_rule: bool
    #: v10+: power level values must be JSON integers (no strings).
    enforce_int_power_levels: bool
    #: v11+: ``m.room.create`` has no ``creator``; the create event's sender is the creator.
    implicit_room_creator: bool
    #: v11+: ``redacts`` lives in the content of ``m.room.redaction``.
    redacts_in_content: bool
    #: v12: the room ID is ``!`` + the create event's reference hash, and the
    #: create event has no ``room_id`` and is never listed in ``auth_events``.
    room_id_from_create_event: bool
    #: v12: creators (create sender + ``additional_creators``) have infinite power.
    privileged_creators: bool
    #: Versions 1 to 12 are all stable in spec v1.19.
    stable: bool = True

    @property
    def is_event_id_computed(self) -> bool:
        """True from v3: receivers derive the event ID from the reference hash."""
        return self.event_format is not EventFormat.V1

    @property
    def max_depth(self) -> int:
        """The largest allowed ``depth`` (2**53-1 under strict canonical JSON, else 2**63-1)."""
        return 2**53 - 1 if self.strict_canonical_json else 2**63 - 1


def _version(identifier: str, **features) -> RoomVersion:
    return RoomVersion(identifier=identifier, **features)


_V1_FEATURES = dict(
    event_format=EventFormat.V1,
    state_resolution=StateResolution.V1,
    redaction_rules=RedactionRules.V1,
    special_case_redaction_auth=True,
    special_case_aliases_auth=True,
    enforce_key_validity=False,
    strict_canonical_json=False,
    limit_notifications_power_levels=False,
    knock_join_rule=False,
    restricted_join_rule=False,
    knock_restricted_join_rule=False,
    enforce_int_power_levels=False,
    implicit_room_creator=False,
    redacts_in_content=False,
    room_id_from_create_event=False,
    privileged_creators=False,
)


def _evolve(base: dict, **changes) -> dict:
    merged = dict(base)
    merged.update(changes)
    return merged


_V2_FEATURES = _evolve(_V1_FEATURES, state_resolution=StateResolution.V2)
_V3_FEATURES = _evolve(_V2_FEATURES, event_format=EventFormat.V2, special_case_redaction_auth=False)
_V4_FEATURES = _evolve(_V3_FEATURES, event_format=EventFormat.V3)
_V5_FEATURES = _evolve(_V4_FEATURES, enforce_key_validity=True)
_V6_FEATURES = _evolve(
    _V5_FEATURES,
    redaction_rules=RedactionRules.V6,
    special_case_aliases_auth=False,
    strict_canonical_json=True,
    limit_notifications_power_levels=True,
)
_V7_FEATURES = _evolve(_V6_FEATURES, knock_join_rule=True)
_V8_FEATURES = _evolve(_V7_FEATURES, redaction_rules=RedactionRules.V8, restricted_join_rule=True)
_V9_FEATURES = _evolve(_V8_FEATURES, redaction_rules=RedactionRules.V9)
_V10_FEATURES = _evolve(_V9_FEATURES, knock_restricted_join_rule=True, enforce_int_power_levels=True)
_V11_FEATURES = _evolve(
    _V10_FEATURES,
    redaction_rules=RedactionRules.V11,
    implicit_room_creator=True,
    redacts_in_content=True,
)
_V12_FEATURES = _evolve(
    _V11_FEATURES,
    state_resolution=StateResolution.V2_1,
    room_id_from_create_event=True,
    privileged_creators=True,
)

#: Every room version mxref knows, by identifier.
ROOM_VERSIONS = {
    v.identifier: v
    for v in (
        _version("1", **_V1_FEATURES),
        _version("2", **_V2_FEATURES),
        _version("3", **_V3_FEATURES),
        _version("4", **_V4_FEATURES),
        _version("5", **_V5_FEATURES),
        _version("6", **_V6_FEATURES),
        _version("7", **_V7_FEATURES),
        _version("8", **_V8_FEATURES),
        _version("9", **_V9_FEATURES),
        _version("10", **_V10_FEATURES),
        _version("11", **_V11_FEATURES),
        _version("12", **_V12_FEATURES),
    )
}

#: The version mxref uses for new rooms unless asked otherwise (the spec's recommendation).
DEFAULT_ROOM_VERSION = "12"

#: The versions a local user may create rooms in.
CREATABLE_ROOM_VERSIONS = ("10", "11", "12")


class UnsupportedRoomVersion(Exception):
    """Raised for a room version identifier mxref does not know."""

    def __init__(self, identifier):
        super().__init__(f"Unsupported room version: {identifier!r}")
        self.identifier = identifier


def get_room_version(identifier) -> RoomVersion:
    """Return the :class:`RoomVersion` for ``identifier`` (a string, or a RoomVersion).

    Raises :class:`UnsupportedRoomVersion` for an unknown identifier.
    """
    if isinstance(identifier, RoomVersion):
        return identifier
    try:
        return ROOM_VERSIONS[identifier]
    except (KeyError, TypeError):
        raise UnsupportedRoomVersion(identifier) from None
