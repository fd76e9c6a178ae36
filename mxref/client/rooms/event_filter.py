"""The ``RoomEventFilter`` that ``/messages`` and ``/context`` take as JSON in their ``filter``
query parameter, read with the filter code of :mod:`mxref.client.filters.filtering`.

Spec: Client-Server API, "Filtering" and the ``RoomEventFilter`` schema
(https://spec.matrix.org/v1.19/client-server-api/#filtering); ``GET /rooms/{roomId}/messages``
and ``GET /rooms/{roomId}/context/{eventId}`` ("A JSON RoomEventFilter to filter returned
events with").
"""

from mxref.client.filters.filtering import EventFilter, validate_filter
from mxref.errors import MatrixError


def parse_room_event_filter(value) -> EventFilter:
    """Check and build the ``RoomEventFilter`` of a ``filter`` query parameter.

    It is checked as the ``room.timeline`` part of a whole filter, which has this schema
    (error messages name it so).

    :param value: the decoded JSON, or ``None`` when the parameter is absent (then every
        event passes).
    :returns: an :class:`~mxref.client.filters.filtering.EventFilter` (not a Deferred).
    :raises MatrixError: 400 ``M_INVALID_PARAM`` for a filter of the wrong shape.
    """
    if value is None:
        return EventFilter.from_json(None)
    if not isinstance(value, dict):
        raise MatrixError(400, "M_INVALID_PARAM", "filter must be a JSON object")
    validate_filter({"room": {"timeline": value}}, errcode="M_INVALID_PARAM")
    return EventFilter.from_json(value)
