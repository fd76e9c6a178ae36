"""Server access control lists: whether a room's ``m.room.server_acl`` lets a server take part.

Spec: Server-Server API, "Server Access Control Lists (ACLs)"
(https://spec.matrix.org/v1.19/server-server-api/#server-access-control-lists-acls) and
Client-Server API, ``m.room.server_acl``. A server is checked, in this order:

1. no ``m.room.server_acl`` event in the room's current state: allowed;
2. the server name is an IP literal and ``allow_ip_literals`` is ``false``: denied;
3. the server name matches an entry of ``deny``: denied;
4. it matches an entry of ``allow``: allowed;
5. otherwise: denied.

Port numbers are ignored; entries are globs where ``*`` matches zero or more characters and
``?`` exactly one; matching is case-insensitive (clarified in v1.19). ``allow_ip_literals``
defaults to ``true``; ``allow`` and ``deny`` default to empty lists (so an ACL event without
``allow`` denies everybody).
"""

import ipaddress
import re

from twisted.internet import defer

from mxref.errors import MatrixError

#: The current-state key of a room's server ACL.
SERVER_ACL_KEY = ("m.room.server_acl", "")


def _host_of(server_name: str) -> str:
    """The host part of ``host[:port]``; an IPv6 literal keeps its brackets."""
    if server_name.startswith("["):
        end = server_name.find("]")
        return server_name[: end + 1] if end != -1 else server_name
    return server_name.rsplit(":", 1)[0] if ":" in server_name else server_name


def is_ip_literal(host: str) -> bool:
    """Whether ``host`` (no port) is an IPv4 address or a bracketed IPv6 address. Not a Deferred."""
    if host.startswith("[") and host.endswith("]"):
        candidate = host[1:-1]
    else:
        candidate = host
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


def glob_to_regex(glob: str):
    """A compiled, case-insensitive regular expression matching exactly the strings ``glob``
    matches (``*``: any run of characters, ``?``: one character). Not a Deferred."""
    pattern = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(pattern, re.IGNORECASE | re.DOTALL)


def _entries(content, key):
    value = content.get(key)
    if not isinstance(value, list):
        return []
    return [entry for entry in value if isinstance(entry, str)]


def _matches_any(host, globs) -> bool:
    return any(glob_to_regex(glob).fullmatch(host) for glob in globs)


def server_acl_allows(acl_content, server_name: str) -> bool:
    """Whether an ``m.room.server_acl`` content lets ``server_name`` take part in the room.

    :param acl_content: the ACL event's ``content``, or ``None`` when the room has no ACL.
    :param server_name: the server name, possibly with a port (ignored).
    :returns: a bool (not a Deferred).
    """
    if acl_content is None:
        return True
    if not isinstance(acl_content, dict):
        acl_content = {}
    host = _host_of(server_name)
    allow_ip_literals = acl_content.get("allow_ip_literals", True)
    if not isinstance(allow_ip_literals, bool):
        allow_ip_literals = True
    if not allow_ip_literals and is_ip_literal(host):
        return False
    if _matches_any(host, _entries(acl_content, "deny")):
        return False
    return _matches_any(host, _entries(acl_content, "allow"))


class ServerAclChecker:
    """Applies a room's current server ACL to a requesting server.

    :param events: an :class:`~mxref.storage.interfaces.IEventStore`.
    """

    def __init__(self, events):
        self._events = events

    @defer.inlineCallbacks
    def is_allowed(self, room_id, server_name):
        """Whether the room's current ACL allows ``server_name``.

        :returns: Deferred firing with a bool.
        """
        state = yield self._events.get_current_state(room_id, types=[SERVER_ACL_KEY])
        acl = state.get(SERVER_ACL_KEY)
        content = None
        if acl is not None:
            content = acl.pdu.get("content")
            if not isinstance(content, dict):
                content = {}
        return server_acl_allows(content, server_name)

    @defer.inlineCallbacks
    def check_allowed(self, room_id, server_name):
        """Refuse an ACL-denied server.

        :returns: Deferred firing with ``None``.
        :raises MatrixError: 403 ``M_FORBIDDEN`` if the ACL denies ``server_name``.
        """
        allowed = yield self.is_allowed(room_id, server_name)
        if not allowed:
            raise MatrixError(
                403, "M_FORBIDDEN", f"Server {server_name} is denied by the room's server ACL"
            )
