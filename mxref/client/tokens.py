"""The one codec for the opaque position tokens the Client-Server API hands out.

Two kinds of token exist:

* :class:`StreamToken` -- a ``/sync`` ``since``/``next_batch`` token: the
  positions reached on the streams (room events, account data,
  receipts, typing, presence), written
  ``s<room_events>_<account_data>_<receipts>_<typing>_<presence>`` (older tokens without the
  typing or presence part still parse, with those positions 0). A
  ``prev_batch`` token from ``/sync`` is written ``s<room_events>`` (the other
  positions do not matter for paging a room's timeline).
* :class:`TopologicalToken` -- a ``/messages`` ``start``/``end`` token: a
  point in one room's timeline in topological order, written
  ``t<depth>_<stream>`` (the stream part is negative for history fetched with
  backfill, which is numbered below every live event).

``/messages`` accepts both kinds as ``from``/``to``
(:func:`parse_pagination_token`): the spec says ``from`` may be the
``prev_batch`` or ``next_batch`` of a ``/sync`` response as well as an
``end``/``start`` token of an earlier ``/messages`` call.

Spec: Client-Server API, "Syncing" (``since``, ``next_batch``,
``prev_batch``), "Pagination" (tokens are opaque to clients) and
``GET /_matrix/client/v3/rooms/{roomId}/messages`` (``from``, ``to``).
"""

import re

import attr

from mxref.errors import MatrixError
from mxref.storage.records import RoomPosition

_STREAM_TOKEN = re.compile(r"s(\d{1,19})(?:_(\d{1,19})_(\d{1,19})(?:_(\d{1,19})(?:_(\d{1,19}))?)?)?")
_TOPOLOGICAL_TOKEN = re.compile(r"t(-?\d{1,19})_(-?\d{1,19})")

#: Every position must fit a signed 64-bit database integer.
_MAX_POSITION = 2**63 - 1


def _position(text, token, kind):
    value = int(text)
    if not -_MAX_POSITION <= value <= _MAX_POSITION:
        raise _bad_token(token, kind)
    return value


def _bad_token(token, what):
    return MatrixError(400, "M_INVALID_PARAM", f"invalid {what} token: {token!r}")


@attr.s(frozen=True, slots=True, auto_attribs=True)
class StreamToken:
    """Positions on the three streams a ``/sync`` response has covered.

    :param room_events: the room-event stream ordering reached.
    :param account_data: the account-data stream position reached.
    :param receipts: the receipts stream position reached.
    :param typing: the (in-memory) typing stream position reached.
    :param presence: the (in-memory) presence stream position reached.
    """

    room_events: int = 0
    account_data: int = 0
    receipts: int = 0
    typing: int = 0
    presence: int = 0

    @classmethod
    def parse(cls, token: str) -> "StreamToken":
        """Read a token written by :meth:`__str__` (or a bare ``s<room_events>``).

        :raises MatrixError: 400 ``M_INVALID_PARAM`` if the token is malformed.
        :returns: a :class:`StreamToken` (not a Deferred).
        """
        match = _STREAM_TOKEN.fullmatch(token) if isinstance(token, str) else None
        if match is None:
            raise _bad_token(token, "sync")
        return cls(*(_position(group or "0", token, "sync") for group in match.groups()))

    def __str__(self) -> str:
        return f"s{self.room_events}_{self.account_data}_{self.receipts}_{self.typing}_{self.presence}"

    def room_position(self) -> RoomPosition:
        """The room-timeline point this token stands for (a pure stream position)."""
        return RoomPosition(None, self.room_events)

    def is_after(self, other: "StreamToken") -> bool:
        """Whether any stream position is past the other token's."""
        return (
            self.room_events > other.room_events
            or self.account_data > other.account_data
            or self.receipts > other.receipts
            or self.typing > other.typing
            or self.presence > other.presence
        )


def format_stream_position(stream_ordering: int) -> str:
    """A ``prev_batch``-style token for a pure room-event stream position.

    :param stream_ordering: the events at or below this position lie before it.
    :returns: ``"s<stream_ordering>"``, which :func:`parse_pagination_token`
        reads back as ``RoomPosition(None, stream_ordering)``.
    """
    return f"s{int(stream_ordering)}"


@attr.s(frozen=True, slots=True, auto_attribs=True)
class TopologicalToken:
    """A point in a room's timeline in ``(depth, stream_ordering)`` order, for ``/messages``.

    :param depth: the depth of the event just before the point.
    :param stream: that event's stream ordering (or one less, for "just before it").
    """

    depth: int
    stream: int

    @classmethod
    def parse(cls, token: str) -> "TopologicalToken":
        """Read a ``t<depth>_<stream>`` token.

        :raises MatrixError: 400 ``M_INVALID_PARAM`` if the token is malformed.
        """
        match = _TOPOLOGICAL_TOKEN.fullmatch(token) if isinstance(token, str) else None
        if match is None:
            raise _bad_token(token, "pagination")
        return cls(_position(match.group(1), token, "pagination"), _position(match.group(2), token, "pagination"))

    @classmethod
    def from_position(cls, position: RoomPosition) -> "TopologicalToken":
        """The token for a :class:`RoomPosition` that has a topological part."""
        return cls(position.topological, position.stream)

    def __str__(self) -> str:
        return f"t{self.depth}_{self.stream}"

    def room_position(self) -> RoomPosition:
        """The :class:`RoomPosition` this token stands for."""
        return RoomPosition(self.depth, self.stream)


def format_room_position(position: RoomPosition) -> str:
    """Write any :class:`RoomPosition` as a token :func:`parse_pagination_token` reads back.

    :returns: ``t<depth>_<stream>`` for a topological position,
        ``s<stream>`` for a pure stream position.
    """
    if position.topological is None:
        return format_stream_position(position.stream)
    return str(TopologicalToken.from_position(position))


def parse_pagination_token(token: str) -> RoomPosition:
    """Read a ``/messages`` ``from``/``to`` token of either kind.

    :param token: a ``t<depth>_<stream>`` token from ``/messages``, or a
        ``/sync`` ``prev_batch``/``next_batch`` token (``s...``), which becomes
        the pure stream position ``RoomPosition(None, room_events)``.
    :raises MatrixError: 400 ``M_INVALID_PARAM`` if the token is malformed.
    :returns: a :class:`~mxref.storage.records.RoomPosition` (not a Deferred).
    """
    if isinstance(token, str) and token.startswith("t"):
        return TopologicalToken.parse(token).room_position()
    if isinstance(token, str) and token.startswith("s"):
        return StreamToken.parse(token).room_position()
    raise _bad_token(token, "pagination")
