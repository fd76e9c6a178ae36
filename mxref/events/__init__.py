"""The pure protocol core: room versions, canonical JSON, hashes, signatures, redaction,
authorization rules, state resolution and the event builder.

Nothing here touches the reactor, the network or the database: plain functions over
plain dicts (events in their federation PDU form), with time passed in as an argument.
"""

from mxref.events.room_versions import (  # noqa: F401
    CREATABLE_ROOM_VERSIONS,
    DEFAULT_ROOM_VERSION,
    ROOM_VERSIONS,
    RoomVersion,
    get_room_version,
)
