"""Filter definitions: checking their shape and applying them to events (pure, no I/O).

A filter (``POST /user/{userId}/filter``, or inline JSON in ``/sync`` and
``/messages``) says which events a client wants and how to format them:

* an **EventFilter** (``presence``, ``account_data``) matches events on
  ``types``/``not_types`` (``*`` is a wildcard for any sequence of
  characters), ``senders``/``not_senders`` and caps their number with
  ``limit``; an exclusion wins over an inclusion;
* a **RoomEventFilter** (``room.state``, ``room.timeline``,
  ``room.ephemeral``, ``room.account_data``) adds ``rooms``/``not_rooms``,
  ``contains_url`` (``true``: only events whose content has a ``url`` key;
  ``false``: only events without one), ``lazy_load_members`` and
  ``include_redundant_members``;
* the **RoomFilter** (``room``) has ``rooms``/``not_rooms`` applied before the
  others, and ``include_leave``;
* the top level has ``event_fields`` (dot-separated paths of the fields to
  keep; the Appendices' "Dot-separated property paths": ``\\.`` is a literal
  dot in a key and ``\\\\`` a literal backslash) and ``event_format``
  (``client`` or ``federation``).

Readings taken: ``limit`` must be an integer; the spec asks for one greater
than 0 but ``0`` is accepted (it asks for no events), as clients send it.
Sender conditions only apply to events that have a sender (account data and
receipts have none). Unknown keys are ignored, as in any Matrix JSON object.

Spec: Client-Server API, "Filtering" and ``POST /user/{userId}/filter``
(https://spec.matrix.org/v1.19/client-server-api/#filtering), the
``EventFilter``/``RoomEventFilter``/``RoomFilter`` schemas; Appendices,
"Dot-separated property paths".
"""

import copy
import re

import attr

from mxref.errors import MatrixError

#: The timeline ``limit`` when a filter gives none.
DEFAULT_TIMELINE_LIMIT = 10

#: The largest timeline ``limit`` honoured ("Servers should ... impose a maximum value").
MAX_TIMELINE_LIMIT = 500

_EVENT_FILTER_LISTS = ("types", "not_types", "senders", "not_senders")
_ROOM_EVENT_FILTER_LISTS = _EVENT_FILTER_LISTS + ("rooms", "not_rooms")
_ROOM_EVENT_FILTER_FLAGS = (
    "contains_url",
    "lazy_load_members",
    "include_redundant_members",
    "unread_thread_notifications",
)
_SIGILS = {"senders": "@", "not_senders": "@", "rooms": "!", "not_rooms": "!"}


def _invalid(where, message, errcode):
    return MatrixError(400, errcode, f"Invalid filter: {where}: {message}")


def _check_string_list(value, where, sigil, errcode):
    if not isinstance(value, list):
        raise _invalid(where, "must be an array of strings", errcode)
    for item in value:
        if not isinstance(item, str):
            raise _invalid(where, "must be an array of strings", errcode)
        if sigil is not None and not item.startswith(sigil):
            raise _invalid(where, f"{item!r} does not start with {sigil!r}", errcode)


def _check_event_filter(value, where, errcode, room_event_filter):
    if not isinstance(value, dict):
        raise _invalid(where, "must be an object", errcode)
    names = _ROOM_EVENT_FILTER_LISTS if room_event_filter else _EVENT_FILTER_LISTS
    for name in names:
        if name in value:
            _check_string_list(value[name], f"{where}.{name}", _SIGILS.get(name), errcode)
    if "limit" in value:
        limit = value["limit"]
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise _invalid(f"{where}.limit", "must be an integer", errcode)
        if limit < 0:
            raise _invalid(f"{where}.limit", "must not be negative", errcode)
    if room_event_filter:
        for name in _ROOM_EVENT_FILTER_FLAGS:
            if name in value and not isinstance(value[name], bool):
                raise _invalid(f"{where}.{name}", "must be a boolean", errcode)


def validate_filter(definition, errcode: str = "M_BAD_JSON") -> dict:
    """Check that a filter definition has the shape the spec's ``Filter`` schema gives it.

    :param definition: the decoded JSON.
    :param errcode: the error code for a bad shape: ``M_BAD_JSON`` for a
        request body, ``M_INVALID_PARAM`` for a query parameter.
    :returns: ``definition`` itself (not a Deferred).
    :raises MatrixError: 400 with ``errcode``, naming the offending field.
    """
    if not isinstance(definition, dict):
        raise _invalid("filter", "must be an object", errcode)
    if "event_fields" in definition:
        _check_string_list(definition["event_fields"], "event_fields", None, errcode)
    if "event_format" in definition and definition["event_format"] not in ("client", "federation"):
        raise _invalid("event_format", "must be 'client' or 'federation'", errcode)
    for name in ("presence", "account_data"):
        if name in definition:
            _check_event_filter(definition[name], name, errcode, room_event_filter=False)
    if "room" in definition:
        room = definition["room"]
        if not isinstance(room, dict):
            raise _invalid("room", "must be an object", errcode)
        for name in ("rooms", "not_rooms"):
            if name in room:
                _check_string_list(room[name], f"room.{name}", "!", errcode)
        if "include_leave" in room and not isinstance(room["include_leave"], bool):
            raise _invalid("room.include_leave", "must be a boolean", errcode)
        for name in ("ephemeral", "state", "timeline", "account_data"):
            if name in room:
                _check_event_filter(room[name], f"room.{name}", errcode, room_event_filter=True)
    return definition


def _wildcard_pattern(pattern: str):
    """A compiled regex for a ``types`` entry: ``*`` matches any sequence, the rest literally."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _patterns(values):
    return None if values is None else tuple(_wildcard_pattern(value) for value in values)


def _matches_any(patterns, value) -> bool:
    return any(pattern.fullmatch(value) for pattern in patterns)


@attr.s(frozen=True, slots=True)
class EventFilter:
    """An ``EventFilter`` or ``RoomEventFilter`` ready to apply.

    Build one with :meth:`from_json`. ``None`` for a list means "absent" (no
    restriction); an empty ``types`` list matches nothing.
    """

    limit = attr.ib(default=None)
    types = attr.ib(default=None)
    not_types = attr.ib(default=())
    senders = attr.ib(default=None)
    not_senders = attr.ib(default=frozenset())
    rooms = attr.ib(default=None)
    not_rooms = attr.ib(default=frozenset())
    contains_url = attr.ib(default=None)
    lazy_load_members = attr.ib(default=False)
    include_redundant_members = attr.ib(default=False)

    @classmethod
    def from_json(cls, definition) -> "EventFilter":
        """Build from an already validated (sub-)filter dict, or ``None`` for "match everything"."""
        definition = definition or {}
        senders = definition.get("senders")
        rooms = definition.get("rooms")
        return cls(
            limit=definition.get("limit"),
            types=_patterns(definition.get("types")),
            not_types=_patterns(definition.get("not_types", ())),
            senders=None if senders is None else frozenset(senders),
            not_senders=frozenset(definition.get("not_senders", ())),
            rooms=None if rooms is None else frozenset(rooms),
            not_rooms=frozenset(definition.get("not_rooms", ())),
            contains_url=definition.get("contains_url"),
            lazy_load_members=definition.get("lazy_load_members", False),
            include_redundant_members=definition.get("include_redundant_members", False),
        )

    def allows_room(self, room_id) -> bool:
        """Whether events of ``room_id`` can pass (``rooms``/``not_rooms``)."""
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    def matches(self, event_type, sender=None, room_id=None, content=None) -> bool:
        """Whether one event passes.

        :param event_type: the event's ``type``.
        :param sender: its sender, or ``None`` for events without one (sender
            conditions are then skipped).
        :param room_id: its room, or ``None`` (room conditions are then skipped).
        :param content: its content, for ``contains_url``.
        :returns: a bool (not a Deferred).
        """
        if _matches_any(self.not_types, event_type):
            return False
        if self.types is not None and not _matches_any(self.types, event_type):
            return False
        if sender is not None:
            if sender in self.not_senders:
                return False
            if self.senders is not None and sender not in self.senders:
                return False
        if room_id is not None and not self.allows_room(room_id):
            return False
        if self.contains_url is not None:
            has_url = isinstance(content, dict) and "url" in content
            if has_url != self.contains_url:
                return False
        return True

    def matches_stored(self, stored) -> bool:
        """:meth:`matches` for a :class:`~mxref.storage.records.StoredEvent`."""
        return self.matches(stored.type, stored.sender, stored.room_id, stored.pdu.get("content"))

    def matches_dict(self, event) -> bool:
        """:meth:`matches` for an event dict (client format, account data or ephemeral event)."""
        return self.matches(
            event.get("type"), event.get("sender"), event.get("room_id"), event.get("content")
        )

    def filter_dicts(self, events) -> list:
        """The event dicts that pass, cut to ``limit`` (keeping the first ones)."""
        kept = [event for event in events if self.matches_dict(event)]
        return kept if self.limit is None else kept[: self.limit]


@attr.s(frozen=True, slots=True)
class SyncFilter:
    """A whole filter definition (the spec's ``Filter``), ready to apply.

    :ivar definition: the JSON it was built from.
    """

    definition = attr.ib()
    presence = attr.ib()
    account_data = attr.ib()
    room_state = attr.ib()
    room_timeline = attr.ib()
    room_ephemeral = attr.ib()
    room_account_data = attr.ib()
    rooms = attr.ib()
    not_rooms = attr.ib()
    include_leave = attr.ib()
    event_fields = attr.ib()
    event_format = attr.ib()

    @classmethod
    def from_json(cls, definition) -> "SyncFilter":
        """Build from a filter dict that :func:`validate_filter` accepted (``{}`` for "everything")."""
        room = definition.get("room", {})
        rooms = room.get("rooms")
        return cls(
            definition=definition,
            presence=EventFilter.from_json(definition.get("presence")),
            account_data=EventFilter.from_json(definition.get("account_data")),
            room_state=EventFilter.from_json(room.get("state")),
            room_timeline=EventFilter.from_json(room.get("timeline")),
            room_ephemeral=EventFilter.from_json(room.get("ephemeral")),
            room_account_data=EventFilter.from_json(room.get("account_data")),
            rooms=None if rooms is None else frozenset(rooms),
            not_rooms=frozenset(room.get("not_rooms", ())),
            include_leave=room.get("include_leave", False),
            event_fields=definition.get("event_fields"),
            event_format=definition.get("event_format", "client"),
        )

    def allows_room(self, room_id) -> bool:
        """The RoomFilter's ``rooms``/``not_rooms``, applied before every per-room filter."""
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    def timeline_limit(self) -> int:
        """The most timeline events per room: the filter's ``limit``, else the default, at most the maximum."""
        limit = self.room_timeline.limit
        if limit is None:
            return DEFAULT_TIMELINE_LIMIT
        return min(limit, MAX_TIMELINE_LIMIT)

    def project(self, event: dict) -> dict:
        """Apply ``event_fields`` to one serialised event (the whole event when absent)."""
        if self.event_fields is None:
            return event
        return project_event_fields(event, self.event_fields)


def split_property_path(path: str) -> list:
    """Split a dot-separated property path into keys (``\\.`` is a dot inside a key, ``\\\\`` a backslash)."""
    keys, current, escaped = [], [], False
    for character in path:
        if escaped:
            current.append(character)
            escaped = False
        elif character == "\\":
            escaped = True
        elif character == ".":
            keys.append("".join(current))
            current = []
        else:
            current.append(character)
    if escaped:
        current.append("\\")
    keys.append("".join(current))
    return keys


def project_event_fields(event: dict, fields) -> dict:
    """Keep only the listed fields of an event (the filter's ``event_fields``).

    :param event: a serialised event; not modified.
    :param fields: dot-separated property paths; a path naming an object
        keeps all of it, a path that is absent from the event is skipped.
    :returns: a new dict (not a Deferred).
    """
    projected = {}
    for path in fields:
        keys = split_property_path(path)
        source = event
        for key in keys[:-1]:
            source = source.get(key) if isinstance(source, dict) else None
        if not isinstance(source, dict) or keys[-1] not in source:
            continue
        target = projected
        for key in keys[:-1]:
            target = target.setdefault(key, {})
            if not isinstance(target, dict):
                break
        else:
            target[keys[-1]] = copy.deepcopy(source[keys[-1]])
    return projected
