"""The authorization rules: may this event enter the room, given the state it is checked against?

Spec (v1.19):

- "Authorization rules" on each room version page: ``/rooms/v1/`` (shared by v1, v2),
  ``/rooms/v3/`` (v3, v4, v5), ``/rooms/v6/``, ``/rooms/v7/``, ``/rooms/v8/`` (v8, v9),
  ``/rooms/v10/``, ``/rooms/v11/`` and ``/rooms/v12/``;
- Server-Server API, "Checks performed on receipt of a PDU", its "Definitions"
  (required power level, invite/kick/ban/redact level, target user) and
  "Auth events selection";
- Client-Server API, ``m.room.power_levels`` (defaults when keys or the whole event are missing);
- room versions 1-9, "m.room.power_levels events accept values as strings", and
  1-5, "... accept values as floats".

:func:`check_auth` walks the spec's ordered checklist. Each refusal raises
:class:`~mxref.errors.AuthError` whose ``rule`` is the number the spec gives that
rule *in that room version*: the numbering moves between versions (v6 drops the
``m.room.aliases`` rule, v8 inserts the ``join_authorised_via_users_server``
rules, v10 and v12 insert power-level rules, v12 inserts rule 2), so the numbers
are counted by :func:`_rule_numbers` from the same feature flags that switch the
rules on. For example "the sender is not joined" is rule 6 in v1, 5 in v10 and 6
in v12.

What lives elsewhere, and why:

- Structural rules about the event's *own* ``auth_events`` list (duplicates,
  entries the selection would not choose, rejected entries; rules 2.1-2.3 or
  3.1-3.3 in v12) need that list and the rejection status of its entries:
  :func:`check_auth_events_list`. :func:`check_auth` works on a state map and so
  applies only the rules that make sense for a map (a create event is present,
  all entries are in the event's room).
- Cryptography that needs keys fetched from servers: the rule "the event is not
  validly signed by the homeserver of ``join_authorised_via_users_server``" is
  checked here only as far as a pure function can (``signatures`` must hold an
  entry for that server); verifying that signature is done by
  ``mxref.events.signing.verify_event_signatures`` before auth, as for the
  sender's signature. Third-party invite signatures, whose public keys are in
  the room state, *are* verified here.
- The redact level for redactions in v3 and later is not an auth rule; it is
  checked when the redaction is applied ("Handling redactions").

Room version 12: the create event is never listed in ``auth_events`` and has no
``room_id``; the room ID is ``!`` + the create event's ID without its ``$``.
Callers of :func:`check_auth` must still pass the create event inside
``auth_events`` (alongside the event's auth events or the state), because rules
2, 4, 5.3.1 and the creators' infinite power all read it.

Readings of the spec where it leaves room (each is what the spec's words say):

- No ``m.room.join_rules`` event means no join rule: only the creator's first
  join passes (some servers assume ``invite`` instead).
- Power level changes compare the values present in the old and new content;
  an added key has no "current value" and a removed key no "new value".
- Before v10, ``"50"`` and ``50`` are the same level (before v6 also ``50.7``),
  so rewriting one as the other is not a change; a value the version does not
  accept reads as the default (or, in the change rules, as absent).
- The v12 page numbers the ``auth_events`` sub-rules 3.1, 3.2, 3.3, 3.5 (rule
  3.4, "a create event is among them", was dropped without renumbering); the
  numbers here follow that text.

Events are plain PDU dicts as mxref stores them: they carry ``event_id`` (for v3
and later the ID computed from the reference hash). ``prev_events`` and
``auth_events`` may be lists of IDs or, in v1/v2, ``[event_id, hashes]`` pairs.
"""

import functools
import math
import re
import types
from collections.abc import Mapping

import attr
from canonicaljson import encode_canonical_json
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from unpaddedbase64 import decode_base64

from mxref.errors import AuthError, InvalidIdentifier
from mxref.events.room_versions import ROOM_VERSIONS, RoomVersion, get_room_version
from mxref.types import UserID

CREATE = "m.room.create"
MEMBER = "m.room.member"
JOIN_RULES = "m.room.join_rules"
POWER_LEVELS = "m.room.power_levels"
THIRD_PARTY_INVITE = "m.room.third_party_invite"
ALIASES = "m.room.aliases"
REDACTION = "m.room.redaction"

#: ``content`` key of a restricted join naming the member who authorised it (v8+).
AUTHORISING_USER = "join_authorised_via_users_server"

#: The seven top-level power levels the ``m.room.power_levels`` rules compare.
TOP_LEVEL_POWER_LEVELS = (
    "users_default",
    "events_default",
    "state_default",
    "ban",
    "redact",
    "kick",
    "invite",
)

#: Defaults from the ``m.room.power_levels`` definition, used when a key (or the
#: whole event) is missing.
POWER_LEVEL_DEFAULTS = {
    "users_default": 0,
    "events_default": 0,
    "state_default": 50,
    "ban": 50,
    "kick": 50,
    "redact": 50,
    "invite": 0,
}

#: v1-v11 without an ``m.room.power_levels`` event: the creator's power level.
CREATOR_POWER_LEVEL_WITHOUT_POWER_LEVELS = 100


# ---------------------------------------------------------------------------
# Small readers over event dicts
# ---------------------------------------------------------------------------


def _domain(identifier) -> str | None:
    """The part after the first ``:`` of a user, room (v1-11) or event (v1-2) ID, or None."""
    if not isinstance(identifier, str) or ":" not in identifier:
        return None
    return identifier.split(":", 1)[1]


def _reference_id(reference):
    """The event ID of a ``prev_events``/``auth_events`` entry (a string, or a v1/v2 pair)."""
    if isinstance(reference, (list, tuple)) and reference:
        return reference[0]
    return reference


def _content(event) -> Mapping:
    content = event.get("content") if event is not None else None
    return content if isinstance(content, Mapping) else {}


def _membership_of(member_event) -> str | None:
    """The ``membership`` of an ``m.room.member`` event, or None when there is no event."""
    if member_event is None:
        return None
    return _content(member_event).get("membership")


def _as_state_map(events) -> Mapping:
    """Map (type, state_key) -> event from an iterable of events; a mapping is used as it is."""
    if isinstance(events, Mapping):
        return events
    state = {}
    for event in events:
        if "state_key" in event:
            state[(event["type"], event["state_key"])] = event
    return state


def _is_valid_user_id(user_id) -> bool:
    """Is ``user_id`` a user ID by the validation applied to ``sender``?

    That is the historical grammar (Appendices, "User Identifiers"), which
    servers must accept from others; see :meth:`mxref.types.UserID.parse`.
    """
    if not isinstance(user_id, str):
        return False
    return _is_valid_user_id_string(user_id)


@functools.lru_cache(maxsize=65536)
def _is_valid_user_id_string(user_id: str) -> bool:
    """The cached core of :func:`_is_valid_user_id` (a pure function of the string: the same
    power levels ``users`` are checked again and again during state resolution)."""
    try:
        UserID.parse(user_id)
    except InvalidIdentifier:
        return False
    return True


# ---------------------------------------------------------------------------
# Power levels
# ---------------------------------------------------------------------------

_STRING_INTEGER = re.compile(r"[+-]?[0-9]+")


def _parse_power_level(value, room_version: RoomVersion | None):
    """A power level value as an int, or None if the room version does not accept it.

    - JSON integers are always accepted (``true``/``false`` are not integers);
    - v1-v9 also accept strings holding a base-10 integer, optionally signed,
      with leading zeros and surrounding whitespace;
    - v1-v5 also accept finite floats, truncated towards zero.

    ``room_version`` None means "whatever any version accepts".
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    lenient = room_version is None
    if isinstance(value, str) and (lenient or not room_version.enforce_int_power_levels):
        stripped = value.strip()
        if _STRING_INTEGER.fullmatch(stripped):
            return int(stripped)
        return None
    if isinstance(value, float) and (lenient or not room_version.strict_canonical_json):
        if math.isfinite(value):
            return int(value)
    return None


def get_power_level_value(content, key, default, room_version):
    """Read one power level from ``content`` (a power levels content or a nested map).

    :param content: the ``content`` of an ``m.room.power_levels`` event, or one of its
        ``events``/``notifications``/``users`` objects, or None (no such event).
    :param key: the property to read, e.g. ``"ban"`` or an event type.
    :param default: returned when the key is missing or its value is not a power
        level the room version accepts.
    :param room_version: a :class:`RoomVersion` or identifier; before v10 string
        integers are parsed, before v6 floats are truncated.
    :returns: an int (or ``default``). Not a Deferred.
    """
    version = get_room_version(room_version)
    if not isinstance(content, Mapping) or key not in content:
        return default
    value = _parse_power_level(content[key], version)
    return default if value is None else value


def get_required_power_level(event_type, is_state, power_levels_content) -> int:
    """The *required power level* to send an event of ``event_type``.

    ``events[event_type]`` if present, otherwise ``state_default`` (default 50) for
    state events and ``events_default`` (default 0) for other events, also when
    there is no power levels event at all (``power_levels_content`` None).
    Values are read leniently (string and float forms are parsed): a power levels
    event whose values its room version does not accept never passed auth.
    Not a Deferred.
    """
    content = power_levels_content if isinstance(power_levels_content, Mapping) else {}
    events = content.get("events")
    if isinstance(events, Mapping) and event_type in events:
        level = _parse_power_level(events[event_type], None)
        if level is not None:
            return level
    key = "state_default" if is_state else "events_default"
    if key in content:
        level = _parse_power_level(content[key], None)
        if level is not None:
            return level
    return POWER_LEVEL_DEFAULTS[key]


def get_creators(create_event, room_version) -> set:
    """The room's creators, as the room version defines them.

    - v1-v10: ``content.creator`` of the create event;
    - v11: the create event's ``sender``;
    - v12: the ``sender`` plus every user in ``content.additional_creators``.

    Not a Deferred.
    """
    version = get_room_version(room_version)
    if create_event is None:
        return set()
    if not version.implicit_room_creator:
        creator = _content(create_event).get("creator")
        return {creator} if isinstance(creator, str) else set()
    creators = {create_event.get("sender")}
    if version.privileged_creators:
        additional = _content(create_event).get("additional_creators")
        if isinstance(additional, list):
            creators.update(user for user in additional if isinstance(user, str))
    return creators


def get_user_power_level(user_id, auth_state, room_version):
    """``user_id``'s power level in the state ``auth_state``.

    :param auth_state: a mapping (type, state_key) -> event, or an iterable of
        state events; it should hold the create and power levels events.
    :returns: ``math.inf`` for a creator in v12; otherwise ``users[user_id]``, else
        ``users_default`` (default 0) of the power levels event; with no power
        levels event, 100 for the creator (v1-v11) and 0 for everyone else.
        Not a Deferred.
    """
    version = get_room_version(room_version)
    state = _as_state_map(auth_state)
    create_event = state.get((CREATE, ""))
    creators = get_creators(create_event, version)
    if version.privileged_creators and user_id in creators:
        return math.inf
    power_levels = state.get((POWER_LEVELS, ""))
    if power_levels is not None:
        content = _content(power_levels)
        users = content.get("users")
        if isinstance(users, Mapping) and user_id in users:
            level = _parse_power_level(users[user_id], version)
            if level is not None:
                return level
        return get_power_level_value(content, "users_default", 0, version)
    if user_id in creators:
        return CREATOR_POWER_LEVEL_WITHOUT_POWER_LEVELS
    return 0


def is_power_event(event) -> bool:
    """Is ``event`` a *power event* as state resolution v2 defines it?

    ``m.room.power_levels``, ``m.room.join_rules``, or an ``m.room.member`` leave
    or ban whose ``sender`` differs from the ``state_key`` (a kick or a ban).
    ``m.room.create`` counts too, as every implementation treats it (it can only
    conflict in a broken room). Only state events qualify. Not a Deferred.
    """
    if "state_key" not in event:
        return False
    event_type = event.get("type")
    if event_type in (POWER_LEVELS, JOIN_RULES, CREATE):
        return True
    if event_type == MEMBER:
        return _content(event).get("membership") in ("leave", "ban") and event.get(
            "sender"
        ) != event.get("state_key")
    return False


# ---------------------------------------------------------------------------
# Auth events selection (Server-Server API, "Auth events selection")
# ---------------------------------------------------------------------------


def _third_party_invite_token(content):
    third_party_invite = content.get("third_party_invite")
    if not isinstance(third_party_invite, Mapping):
        return None
    signed = third_party_invite.get("signed")
    if not isinstance(signed, Mapping):
        return None
    token = signed.get("token")
    return token if isinstance(token, str) else None


def auth_types_for_event(event, room_version) -> list:
    """The (type, state_key) pairs the auth events selection picks for ``event``.

    - nothing for ``m.room.create``;
    - ``m.room.create`` (not in v12, where the room ID names it);
    - ``m.room.power_levels`` and the sender's ``m.room.member``;
    - for ``m.room.member``: the target's membership; ``m.room.join_rules`` for
      ``join``, ``invite`` and ``knock``; for an invite with ``third_party_invite``,
      the ``m.room.third_party_invite`` whose state_key is ``signed.token``; from v8,
      for a join with ``join_authorised_via_users_server``, that user's membership.

    :returns: a list without duplicates, in that order. Not a Deferred.
    """
    version = get_room_version(room_version)
    if event.get("type") == CREATE:
        return []
    wanted = []

    def select(key):
        if key not in wanted:
            wanted.append(key)

    if not version.room_id_from_create_event:
        select((CREATE, ""))
    select((POWER_LEVELS, ""))
    select((MEMBER, event.get("sender")))
    if event.get("type") == MEMBER:
        content = _content(event)
        membership = content.get("membership")
        select((MEMBER, event.get("state_key")))
        if membership in ("join", "invite", "knock"):
            select((JOIN_RULES, ""))
        if membership == "invite" and "third_party_invite" in content:
            token = _third_party_invite_token(content)
            if token is not None:
                select((THIRD_PARTY_INVITE, token))
        if version.restricted_join_rule and membership == "join":
            authoriser = content.get(AUTHORISING_USER)
            if isinstance(authoriser, str):
                select((MEMBER, authoriser))
    return wanted


# ---------------------------------------------------------------------------
# Rule numbering per room version
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _rule_numbers(version: RoomVersion) -> Mapping:
    """Number the spec's rules for ``version`` by counting the rules it has.

    Keys name rules; values are the spec's numbers for this version. Rules that
    only exist in some versions are present only for those versions.
    """
    numbers = {}
    counter = iter(range(1, 100))

    def top(name):
        numbers[name] = str(next(counter))

    top("create")
    if version.room_id_from_create_event:
        top("room_id")
    top("auth_events")
    top("federate")
    if version.special_case_aliases_auth:
        top("aliases")
    top("member")
    top("sender_joined")
    top("third_party_invite")
    top("required_power")
    top("state_key")
    top("power_levels")
    if version.special_case_redaction_auth:
        top("redaction")

    member = iter(range(1, 100))

    def member_rule(name):
        numbers[name] = f"{numbers['member']}.{next(member)}"

    member_rule("member_fields")
    if version.restricted_join_rule:
        member_rule("authoriser_signed")
    for name in ("join", "invite", "leave", "ban"):
        member_rule(name)
    if version.knock_join_rule:
        member_rule("knock")
    member_rule("unknown_membership")

    join = iter(range(1, 100))

    def join_rule(name):
        numbers[name] = f"{numbers['join']}.{next(join)}"

    for name in ("join_first", "join_other_user", "join_banned", "join_invite"):
        join_rule(name)
    if version.restricted_join_rule:
        join_rule("join_restricted")
    join_rule("join_public")
    join_rule("join_otherwise")

    levels = iter(range(1, 100))

    def levels_rule(name):
        numbers[name] = f"{numbers['power_levels']}.{next(levels)}"

    if version.enforce_int_power_levels:
        levels_rule("levels_integers")
        levels_rule("levels_maps")
    levels_rule("levels_users")
    if version.privileged_creators:
        levels_rule("levels_creators")
    for name in (
        "levels_first",
        "levels_top_level",
        "levels_events_old",
        "levels_events_new",
        "levels_users_old",
        "levels_users_new",
    ):
        levels_rule(name)
    return types.MappingProxyType(numbers)


# ---------------------------------------------------------------------------
# The checklist
# ---------------------------------------------------------------------------


@attr.s(frozen=True, slots=True, auto_attribs=True)
class _AuthCheck:
    """One run of the checklist: the event, the state it is checked against, the version."""

    event: Mapping
    state: Mapping
    version: RoomVersion
    numbers: Mapping

    def refuse(self, rule: str, msg: str):
        """Raise the refusal of the rule named ``rule`` (``"join"`` + ``".2"`` style suffixes allowed)."""
        name, _, suffix = rule.partition(".")
        number = self.numbers[name] + (f".{suffix}" if suffix else "")
        raise AuthError(number, msg)

    @property
    def sender(self):
        return self.event.get("sender")

    @property
    def content(self) -> Mapping:
        return _content(self.event)

    @property
    def create_event(self):
        return self.state.get((CREATE, ""))

    @property
    def power_levels_content(self):
        power_levels = self.state.get((POWER_LEVELS, ""))
        return None if power_levels is None else _content(power_levels)

    @property
    def join_rule(self):
        join_rules = self.state.get((JOIN_RULES, ""))
        return None if join_rules is None else _content(join_rules).get("join_rule")

    def membership(self, user_id):
        """``user_id``'s current membership, or None."""
        return _membership_of(self.state.get((MEMBER, user_id)))

    def power_level(self, user_id):
        return get_user_power_level(user_id, self.state, self.version)

    def level(self, name):
        """The invite, kick, ban or redact level (or another top-level power level)."""
        return get_power_level_value(
            self.power_levels_content, name, POWER_LEVEL_DEFAULTS[name], self.version
        )


def check_auth(event, auth_events, room_version) -> None:
    """Check ``event`` against the authorization rules of ``room_version``.

    :param event: the PDU dict being authorised.
    :param auth_events: an iterable of event dicts (or a mapping
        (type, state_key) -> event) to check against: the event's own auth events
        or the room state before it. In room version 12 it must also contain the
        room's ``m.room.create`` event, which is never listed in ``auth_events``.
        Duplicate keys and rejected entries are not detected here; see
        :func:`check_auth_events_list`.
    :param room_version: a :class:`RoomVersion` or identifier.
    :returns: None when the event is allowed. Not a Deferred.
    :raises AuthError: naming the refusing rule, numbered as in the version's spec.
    """
    version = get_room_version(room_version)
    check = _AuthCheck(
        event=event,
        state=_as_state_map(auth_events),
        version=version,
        numbers=_rule_numbers(version),
    )
    if event.get("type") == CREATE:
        _check_create(check)
        return
    if version.room_id_from_create_event:
        _check_room_id_names_create_event(check)
    _check_auth_events_state(check)
    _check_federation_allowed(check)
    if version.special_case_aliases_auth and event.get("type") == ALIASES:
        _check_aliases(check)
        return
    if event.get("type") == MEMBER:
        _check_membership(check)
        return
    _check_sender_is_joined(check)
    if event.get("type") == THIRD_PARTY_INVITE:
        _check_third_party_invite_event(check)
        return
    _check_required_power_level(check)
    _check_state_key_of_other_user(check)
    if event.get("type") == POWER_LEVELS:
        _check_power_levels(check)
    if version.special_case_redaction_auth and event.get("type") == REDACTION:
        _check_redaction(check)


def _check_create(check: _AuthCheck) -> None:
    """Rule 1: the ``m.room.create`` event."""
    event, content, version = check.event, check.content, check.version
    if event.get("prev_events"):
        check.refuse("create.1", "the create event must not have prev_events")
    if version.room_id_from_create_event:
        if "room_id" in event:
            check.refuse("create.2", "the create event must not have a room_id")
    elif _domain(event.get("room_id")) is None or _domain(event.get("room_id")) != _domain(
        check.sender
    ):
        check.refuse("create.2", "the room_id's domain must match the sender's domain")
    if "room_version" in content:
        room_version = content["room_version"]
        if not isinstance(room_version, str) or room_version not in ROOM_VERSIONS:
            check.refuse("create.3", "content.room_version is not a recognised version")
    if not version.implicit_room_creator and "creator" not in content:
        check.refuse("create.4", "content has no creator")
    if version.privileged_creators and "additional_creators" in content:
        additional = content["additional_creators"]
        if not isinstance(additional, list) or not all(map(_is_valid_user_id, additional)):
            check.refuse("create.4", "additional_creators must be an array of valid user IDs")


def _check_room_id_names_create_event(check: _AuthCheck) -> None:
    """Rule 2 (v12): the room ID is ``!`` + the ID of the create event."""
    create_event = check.create_event
    room_id = check.event.get("room_id")
    if create_event is None:
        check.refuse("room_id", "the room's create event is unknown")
    create_id = create_event.get("event_id")
    if not isinstance(room_id, str) or not isinstance(create_id, str):
        check.refuse("room_id", "the room_id is not the create event's ID")
    if room_id != "!" + create_id[1:]:
        check.refuse("room_id", "the room_id is not the create event's ID with '!' for '$'")


def _check_auth_events_state(check: _AuthCheck) -> None:
    """Rules 2.4 and 2.5 (3.5 in v12), the ones that apply to a state map."""
    if not check.version.room_id_from_create_event and check.create_event is None:
        check.refuse("auth_events.4", "there is no m.room.create event")
    room_id = check.event.get("room_id")
    for key in auth_types_for_event(check.event, check.version):
        auth_event = check.state.get(key)
        if auth_event is not None and auth_event.get("room_id") != room_id:
            check.refuse("auth_events.5", f"the {key[0]} auth event is from another room")


def _check_federation_allowed(check: _AuthCheck) -> None:
    """Rule 3 (4 in v12): ``m.federate`` false keeps other servers out."""
    create_event = check.create_event
    if create_event is None:
        return
    if _content(create_event).get("m.federate") is False and _domain(check.sender) != _domain(
        create_event.get("sender")
    ):
        check.refuse("federate", "the room does not federate and the sender is on another server")


def _check_aliases(check: _AuthCheck) -> None:
    """Rule 4 of v1-v5: ``m.room.aliases`` may only be set by the server named by its state_key."""
    if "state_key" not in check.event:
        check.refuse("aliases.1", "an m.room.aliases event must have a state_key")
    if check.event["state_key"] != _domain(check.sender):
        check.refuse("aliases.2", "the sender's domain must match the state_key")


# --- m.room.member ---------------------------------------------------------


def _check_membership(check: _AuthCheck) -> None:
    """The ``m.room.member`` rules (5 in v1-v5 and v12, 4 in v6-v11)."""
    if "state_key" not in check.event or "membership" not in check.content:
        check.refuse("member_fields", "a membership event needs a state_key and content.membership")
    if check.version.restricted_join_rule and AUTHORISING_USER in check.content:
        _check_authorising_server_signed(check)
    membership = check.content["membership"]
    if membership == "join":
        _check_join(check)
    elif membership == "invite":
        _check_invite(check)
    elif membership == "leave":
        _check_leave(check)
    elif membership == "ban":
        _check_ban(check)
    elif membership == "knock" and check.version.knock_join_rule:
        _check_knock(check)
    else:
        check.refuse("unknown_membership", f"unknown membership {membership!r}")


def _check_authorising_server_signed(check: _AuthCheck) -> None:
    """Rule 4.2 (v8-v11; 5.2 in v12): signed by the server of ``join_authorised_via_users_server``.

    The rule applies whatever the membership, as the spec words it.

    Only the presence of a signature from that server is checked here; it is
    verified cryptographically with the other signatures before auth (by
    ``mxref.events.signing.verify_event_signatures``).
    """
    authoriser = check.content[AUTHORISING_USER]
    signatures = check.event.get("signatures")
    server = _domain(authoriser) if _is_valid_user_id(authoriser) else None
    if server is None or not isinstance(signatures, Mapping) or not signatures.get(server):
        check.refuse(
            "authoriser_signed",
            "the event is not signed by the server of join_authorised_via_users_server",
        )


def _is_first_join_of_creator(check: _AuthCheck) -> bool:
    """Is this the creator's join straight after the create event?

    "The only previous event is an m.room.create and the state_key is the
    creator" (v1-v10: ``content.creator``; v11+: the create event's ``sender``).
    """
    create_event = check.create_event
    prev_events = check.event.get("prev_events") or []
    if create_event is None or len(prev_events) != 1:
        return False
    if _reference_id(prev_events[0]) != create_event.get("event_id"):
        return False
    if check.version.implicit_room_creator:
        creator = create_event.get("sender")
    else:
        creator = _content(create_event).get("creator")
    return check.event.get("state_key") == creator


def _invite_join_rules(version: RoomVersion) -> tuple:
    """Join rules under which invited users may join: ``invite``, and ``knock`` from v7."""
    return ("invite", "knock") if version.knock_join_rule else ("invite",)


def _restricted_join_rules(version: RoomVersion) -> tuple:
    """``restricted`` from v8 and ``knock_restricted`` from v10."""
    rules = ()
    if version.restricted_join_rule:
        rules += ("restricted",)
    if version.knock_restricted_join_rule:
        rules += ("knock_restricted",)
    return rules


def _knock_join_rules(version: RoomVersion) -> tuple:
    """Join rules that accept knocks: ``knock`` from v7 and ``knock_restricted`` from v10."""
    rules = ()
    if version.knock_join_rule:
        rules += ("knock",)
    if version.knock_restricted_join_rule:
        rules += ("knock_restricted",)
    return rules


def _check_join(check: _AuthCheck) -> None:
    """``membership`` is ``join``."""
    if _is_first_join_of_creator(check):
        return
    sender, version = check.sender, check.version
    if sender != check.event["state_key"]:
        check.refuse("join_other_user", "a user can only join themselves")
    current = check.membership(sender)
    if current == "ban":
        check.refuse("join_banned", "the sender is banned")
    join_rule = check.join_rule
    if join_rule in _invite_join_rules(version) and current in ("invite", "join"):
        return
    if join_rule in _restricted_join_rules(version):
        _check_restricted_join(check, current)
        return
    if join_rule == "public":
        return
    check.refuse("join_otherwise", f"join rule {join_rule!r} does not let the sender join")


def _check_restricted_join(check: _AuthCheck, current) -> None:
    """Join rule ``restricted`` (v8+) or ``knock_restricted`` (v10+)."""
    if current in ("join", "invite"):
        return
    authoriser = check.content.get(AUTHORISING_USER)
    if (
        not isinstance(authoriser, str)
        or check.membership(authoriser) != "join"
        or check.power_level(authoriser) < check.level("invite")
    ):
        check.refuse(
            "join_restricted.2",
            "join_authorised_via_users_server is not a joined member able to invite",
        )


def _check_invite(check: _AuthCheck) -> None:
    """``membership`` is ``invite``."""
    if "third_party_invite" in check.content:
        _check_third_party_invite_membership(check)
        return
    if check.membership(check.sender) != "join":
        check.refuse("invite.2", "the sender is not joined")
    if check.membership(check.event["state_key"]) in ("join", "ban"):
        check.refuse("invite.3", "the target user is joined or banned")
    if check.power_level(check.sender) >= check.level("invite"):
        return
    check.refuse("invite.5", "the sender's power level is below the invite level")


def _check_third_party_invite_membership(check: _AuthCheck) -> None:
    """An invite that redeems an ``m.room.third_party_invite``."""
    target = check.event["state_key"]
    if check.membership(target) == "ban":
        check.refuse("invite.1.1", "the target user is banned")
    third_party_invite = check.content["third_party_invite"]
    signed = third_party_invite.get("signed") if isinstance(third_party_invite, Mapping) else None
    if not isinstance(signed, Mapping):
        check.refuse("invite.1.2", "third_party_invite has no signed property")
    if "mxid" not in signed or "token" not in signed:
        check.refuse("invite.1.3", "signed must have mxid and token")
    if signed["mxid"] != target:
        check.refuse("invite.1.4", "signed.mxid does not match the state_key")
    token = signed["token"]
    invite_event = check.state.get((THIRD_PARTY_INVITE, token)) if isinstance(token, str) else None
    if invite_event is None:
        check.refuse("invite.1.5", "there is no m.room.third_party_invite for the token")
    if invite_event.get("sender") != check.sender:
        check.refuse("invite.1.6", "the sender did not send the m.room.third_party_invite")
    if _third_party_signature_matches(signed, _content(invite_event)):
        return
    check.refuse("invite.1.8", "no signature in signed matches the invite's public keys")


def _third_party_public_keys(invite_content: Mapping) -> list:
    """The public keys of an ``m.room.third_party_invite``: ``public_key`` and ``public_keys[]``."""
    keys = []
    if isinstance(invite_content.get("public_key"), str):
        keys.append(invite_content["public_key"])
    public_keys = invite_content.get("public_keys")
    if isinstance(public_keys, list):
        for entry in public_keys:
            if isinstance(entry, Mapping) and isinstance(entry.get("public_key"), str):
                keys.append(entry["public_key"])
    return keys


def _third_party_signature_matches(signed: Mapping, invite_content: Mapping) -> bool:
    """Does any ed25519 signature in ``signed`` verify with any of the invite's public keys?

    ``signed`` is signed JSON (Appendices, "Signing JSON"): the signatures cover
    its canonical JSON without ``signatures`` and ``unsigned``.
    """
    signatures = signed.get("signatures")
    if not isinstance(signatures, Mapping):
        return False
    unsigned_part = {k: v for k, v in signed.items() if k not in ("signatures", "unsigned")}
    try:
        message = encode_canonical_json(unsigned_part)
    except (TypeError, ValueError):
        return False
    verify_keys = []
    for public_key in _third_party_public_keys(invite_content):
        try:
            verify_keys.append(VerifyKey(decode_base64(public_key)))
        except (ValueError, TypeError, UnicodeEncodeError):
            continue
    for entity_signatures in signatures.values():
        if not isinstance(entity_signatures, Mapping):
            continue
        for key_id, signature in entity_signatures.items():
            if not str(key_id).startswith("ed25519:") or not isinstance(signature, str):
                continue
            try:
                signature_bytes = decode_base64(signature)
            except (ValueError, UnicodeEncodeError):
                continue
            for verify_key in verify_keys:
                try:
                    verify_key.verify(message, signature_bytes)
                except (BadSignatureError, ValueError, TypeError):
                    continue
                return True
    return False


def _check_leave(check: _AuthCheck) -> None:
    """``membership`` is ``leave``: leaving, rejecting, retracting a knock, kicking, unbanning."""
    sender, target = check.sender, check.event["state_key"]
    if sender == target:
        allowed = (
            ("invite", "join", "knock") if check.version.knock_join_rule else ("invite", "join")
        )
        if check.membership(sender) in allowed:
            return
        check.refuse("leave.1", f"a user can only leave from {' or '.join(allowed)}")
    if check.membership(sender) != "join":
        check.refuse("leave.2", "the sender is not joined")
    sender_level = check.power_level(sender)
    if check.membership(target) == "ban" and sender_level < check.level("ban"):
        check.refuse("leave.3", "unbanning needs the ban level")
    if sender_level >= check.level("kick") and check.power_level(target) < sender_level:
        return
    check.refuse("leave.5", "kicking needs the kick level and more power than the target")


def _check_ban(check: _AuthCheck) -> None:
    """``membership`` is ``ban``."""
    sender = check.sender
    if check.membership(sender) != "join":
        check.refuse("ban.1", "the sender is not joined")
    sender_level = check.power_level(sender)
    if (
        sender_level >= check.level("ban")
        and check.power_level(check.event["state_key"]) < sender_level
    ):
        return
    check.refuse("ban.3", "banning needs the ban level and more power than the target")


def _check_knock(check: _AuthCheck) -> None:
    """``membership`` is ``knock`` (v7+)."""
    knock_rules = _knock_join_rules(check.version)
    if check.join_rule not in knock_rules:
        check.refuse("knock.1", f"the join rule must be {' or '.join(knock_rules)} to knock")
    if check.sender != check.event["state_key"]:
        check.refuse("knock.2", "a user can only knock for themselves")
    if check.membership(check.sender) not in ("ban", "invite", "join"):
        return
    check.refuse("knock.4", "banned, invited or joined users cannot knock")


# --- every other event -----------------------------------------------------


def _check_sender_is_joined(check: _AuthCheck) -> None:
    if check.membership(check.sender) != "join":
        check.refuse("sender_joined", "the sender is not joined to the room")


def _check_third_party_invite_event(check: _AuthCheck) -> None:
    """``m.room.third_party_invite``: allowed if and only if the sender may invite."""
    if check.power_level(check.sender) < check.level("invite"):
        check.refuse("third_party_invite.1", "the sender's power level is below the invite level")


def _check_required_power_level(check: _AuthCheck) -> None:
    required = get_required_power_level(
        check.event.get("type"), "state_key" in check.event, check.power_levels_content
    )
    if required > check.power_level(check.sender):
        check.refuse(
            "required_power", "the sender's power level is below the event's required level"
        )


def _check_state_key_of_other_user(check: _AuthCheck) -> None:
    state_key = check.event.get("state_key")
    if isinstance(state_key, str) and state_key.startswith("@") and state_key != check.sender:
        check.refuse("state_key", "a state_key starting with '@' must be the sender's user ID")


# --- m.room.power_levels ---------------------------------------------------


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_power_levels(check: _AuthCheck) -> None:
    """The ``m.room.power_levels`` rules (10 in v1-v5 and v12, 9 in v6-v11)."""
    content, version = check.content, check.version
    if version.enforce_int_power_levels:
        for key in TOP_LEVEL_POWER_LEVELS:
            if key in content and not _is_integer(content[key]):
                check.refuse("levels_integers", f"{key} must be an integer")
        for key in ("events", "notifications"):
            if key in content and not (
                isinstance(content[key], Mapping) and all(map(_is_integer, content[key].values()))
            ):
                check.refuse("levels_maps", f"{key} must be an object of integers")
    users = content.get("users", {})
    if not isinstance(users, Mapping) or not all(
        _is_valid_user_id(user) and _parse_power_level(level, version) is not None
        for user, level in users.items()
    ):
        check.refuse("levels_users", "users must map valid user IDs to integers")
    if version.privileged_creators:
        creators_listed = get_creators(check.create_event, version) & set(users)
        if creators_listed:
            check.refuse("levels_creators", "users must not list the room's creators")
    previous = check.power_levels_content
    if previous is None:
        return
    sender_level = check.power_level(check.sender)
    _check_top_level_changes(check, previous, sender_level)
    mapped = (
        ("events", "notifications") if version.limit_notifications_power_levels else ("events",)
    )
    for key in mapped:
        _check_mapped_level_changes(check, key, previous, sender_level)
    _check_user_level_changes(check, previous, sender_level)


def _changed_levels(old_map, new_map, version):
    """Yield (key, old, new) for each key added, changed or removed; absent values are None.

    Values are compared as parsed power levels, so ``"50"`` and ``50`` are equal
    (before v10); a value the version does not accept counts as absent.
    """
    old_map = old_map if isinstance(old_map, Mapping) else {}
    new_map = new_map if isinstance(new_map, Mapping) else {}
    for key in sorted(set(old_map) | set(new_map), key=str):
        old = _parse_power_level(old_map[key], version) if key in old_map else None
        new = _parse_power_level(new_map[key], version) if key in new_map else None
        if old != new:
            yield key, old, new


def _check_top_level_changes(check, previous, sender_level) -> None:
    """For the seven top-level levels added, changed or removed: old and new within the sender's power."""
    old_top = {k: previous[k] for k in TOP_LEVEL_POWER_LEVELS if k in previous}
    new_top = {k: check.content[k] for k in TOP_LEVEL_POWER_LEVELS if k in check.content}
    for key, old, new in _changed_levels(old_top, new_top, check.version):
        if old is not None and old > sender_level:
            check.refuse(
                "levels_top_level.1", f"the current {key} is above the sender's power level"
            )
        if new is not None and new > sender_level:
            check.refuse("levels_top_level.2", f"the new {key} is above the sender's power level")


def _check_mapped_level_changes(check, key, previous, sender_level) -> None:
    """``events`` / ``notifications`` entries: old (changed/removed) and new (added/changed)."""
    changes = list(_changed_levels(previous.get(key), check.content.get(key), check.version))
    for name, old, _new in changes:
        if old is not None and old > sender_level:
            check.refuse(
                "levels_events_old.1",
                f"the current {key}[{name!r}] is above the sender's power level",
            )
    for name, _old, new in changes:
        if new is not None and new > sender_level:
            check.refuse(
                "levels_events_new.1", f"the new {key}[{name!r}] is above the sender's power level"
            )


def _check_user_level_changes(check, previous, sender_level) -> None:
    """``users`` entries: others' old levels below the sender's; new levels within it."""
    changes = list(
        _changed_levels(previous.get("users"), check.content.get("users"), check.version)
    )
    for user, old, _new in changes:
        if user != check.sender and old is not None and old >= sender_level:
            check.refuse("levels_users_old.1", f"{user}'s current level is not below the sender's")
    for user, _old, new in changes:
        if new is not None and new > sender_level:
            check.refuse(
                "levels_users_new.1", f"{user}'s new level is above the sender's power level"
            )


# --- m.room.redaction (v1, v2) ---------------------------------------------


def _check_redaction(check: _AuthCheck) -> None:
    """Rule 11 of v1/v2: redact level, or the redacted event comes from the redaction's server."""
    if check.power_level(check.sender) >= check.level("redact"):
        return
    redacted_domain = _domain(check.event.get("redacts"))
    if redacted_domain is not None and redacted_domain == _domain(check.event.get("event_id")):
        return
    check.refuse(
        "redaction.3",
        "the sender has no redact level and the redacted event is from another server",
    )


# ---------------------------------------------------------------------------
# Rules about the event's own auth_events list
# ---------------------------------------------------------------------------


def check_auth_events_list(
    event, auth_event_dicts, room_version, is_rejected=lambda event_id: False
) -> None:
    """Check the structural rules on ``event``'s own ``auth_events`` list.

    Rules 2.1-2.5 (3.1, 3.2, 3.3, 3.5 and rule 2 in v12): no duplicate
    (type, state_key); only entries the auth events selection would choose;
    no rejected entry; a create event among them (v1-v11) or none (v12); all in
    the event's room. In v12 also rule 2: the ``room_id`` is ``!`` + the ID of a
    create event that was not rejected.

    ``m.room.create`` events are not subject to these rules (rule 1 decides them).

    :param event: the PDU dict.
    :param auth_event_dicts: the events its ``auth_events`` list names, in order.
    :param room_version: a :class:`RoomVersion` or identifier.
    :param is_rejected: called with an event ID; True if that event was rejected.
    :returns: None. Not a Deferred.
    :raises AuthError: naming the refusing rule.
    """
    version = get_room_version(room_version)
    numbers = _rule_numbers(version)
    if event.get("type") == CREATE:
        return
    auth_event_dicts = list(auth_event_dicts)

    def refuse(rule, msg):
        raise AuthError(f"{numbers['auth_events']}.{rule}", msg)

    if version.room_id_from_create_event:
        room_id = event.get("room_id")
        if not isinstance(room_id, str) or not room_id.startswith("!") or len(room_id) < 2:
            raise AuthError(
                numbers["room_id"], "the room_id is not a create event's ID with '!' for '$'"
            )
        if is_rejected("$" + room_id[1:]):
            raise AuthError(numbers["room_id"], "the room's create event was rejected")

    keys = [
        (auth_event.get("type"), auth_event.get("state_key")) for auth_event in auth_event_dicts
    ]
    if len(set(keys)) != len(keys):
        refuse(1, "auth_events has duplicate (type, state_key) entries")
    selectable = set(auth_types_for_event(event, version))
    for key, auth_event in zip(keys, auth_event_dicts):
        if "state_key" not in auth_event or key not in selectable:
            refuse(2, f"auth_events has an entry the selection would not choose: {key}")
    for auth_event in auth_event_dicts:
        if is_rejected(auth_event.get("event_id")):
            refuse(3, f"auth event {auth_event.get('event_id')} was rejected")
    if not version.room_id_from_create_event and (CREATE, "") not in keys:
        refuse(4, "auth_events has no m.room.create event")
    for auth_event in auth_event_dicts:
        if auth_event.get("room_id") != event.get("room_id"):
            refuse(5, f"auth event {auth_event.get('event_id')} is from another room")
