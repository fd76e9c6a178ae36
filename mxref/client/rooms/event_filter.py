"""The ``RoomEventFilter`` that ``/messages`` and ``/context`` take in their ``filter`` query parameter.

Spec: Client-Server API, "Filtering" and the ``RoomEventFilter`` schema
(https://spec.matrix.org/v1.19/client-server-api/#filtering): ``types`` and
``not_types`` (``*`` is a wildcard; ``not_types`` wins over ``types``),
``senders`` and ``not_senders`` (exact user IDs), ``contains_url`` (``true``:
only events whose content has a ``url`` key, ``false``: only events without),
``limit``, ``lazy_load_members`` and ``include_redundant_members`` ("Lazy-loading
room members"), ``rooms``/``not_rooms``. A list that is absent does not filter.
"""

import re

import attr

from mxref.errors import MatrixError


def _bad(field, kind):
    return MatrixError(400, "M_BAD_JSON", f"filter field {field} must be {kind}")


def _string_list(body, field):
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _bad(field, "a list of strings")
    return tuple(value)


def _boolean(body, field, default):
    value = body.get(field, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _bad(field, "a boolean")
    return value


def _type_pattern(pattern):
    """A compiled regex for an event type pattern in which ``*`` matches anything."""
    return re.compile(".*".join(re.escape(piece) for piece in pattern.split("*")), re.DOTALL)


def _matches_any(value, patterns):
    return any(pattern.fullmatch(value) for pattern in patterns)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class RoomEventFilter:
    """A parsed ``RoomEventFilter``; the default instance lets every event through.

    :param limit: the filter's own ``limit``, or ``None``.
    """

    types: tuple = None
    not_types: tuple = ()
    senders: tuple = None
    not_senders: tuple = ()
    rooms: tuple = None
    not_rooms: tuple = ()
    contains_url: object = None
    limit: object = None
    lazy_load_members: bool = False
    include_redundant_members: bool = False

    @classmethod
    def parse(cls, body):
        """Read a filter object sent by a client (``None`` gives the empty filter).

        :returns: a :class:`RoomEventFilter` (not a Deferred).
        :raises MatrixError: 400 ``M_BAD_JSON`` for a field of the wrong type,
            400 ``M_INVALID_PARAM`` for a ``limit`` below 1.
        """
        if body is None:
            return cls()
        if not isinstance(body, dict):
            raise MatrixError(400, "M_BAD_JSON", "filter must be a JSON object")
        contains_url = body.get("contains_url")
        if contains_url is not None and not isinstance(contains_url, bool):
            raise _bad("contains_url", "a boolean")
        limit = body.get("limit")
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise _bad("limit", "an integer")
            if limit < 1:
                raise MatrixError(400, "M_INVALID_PARAM", "filter limit must be at least 1")
        return cls(
            types=_string_list(body, "types"),
            not_types=_string_list(body, "not_types") or (),
            senders=_string_list(body, "senders"),
            not_senders=_string_list(body, "not_senders") or (),
            rooms=_string_list(body, "rooms"),
            not_rooms=_string_list(body, "not_rooms") or (),
            contains_url=contains_url,
            limit=limit,
            lazy_load_members=_boolean(body, "lazy_load_members", False),
            include_redundant_members=_boolean(body, "include_redundant_members", False),
        )

    def allows_room(self, room_id) -> bool:
        """Whether events of ``room_id`` pass ``rooms``/``not_rooms``."""
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    def allows(self, stored) -> bool:
        """Whether a :class:`~mxref.storage.records.StoredEvent` passes the filter. Not a Deferred."""
        if not self.allows_room(stored.room_id):
            return False
        if _matches_any(stored.type, [_type_pattern(p) for p in self.not_types]):
            return False
        if self.types is not None and not _matches_any(stored.type, [_type_pattern(p) for p in self.types]):
            return False
        if stored.sender in self.not_senders:
            return False
        if self.senders is not None and stored.sender not in self.senders:
            return False
        if self.contains_url is not None:
            content = stored.pdu.get("content")
            has_url = isinstance(content, dict) and isinstance(content.get("url"), str)
            if has_url != self.contains_url:
                return False
        return True
