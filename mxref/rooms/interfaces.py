"""What the room services need from other servers, as an interface that the federation layer
implements, so that room and client code never imports :mod:`mxref.federation`.

Spec: Server-Server API, "Joining Rooms", "Inviting to a room", "Leaving Rooms (Rejecting
Invites)" and "Querying for information" (``query/directory``),
https://spec.matrix.org/v1.19/server-server-api/.
"""

from twisted.internet import defer
from zope.interface import Interface, implementer

from mxref.errors import MatrixError


class IRemoteRooms(Interface):
    """Room operations that involve other homeservers."""

    def resolve_alias(alias):
        """Ask the alias's server which room it names.

        :returns: Deferred firing with ``(room_id, servers)``.
        :raises MatrixError: 404 ``M_NOT_FOUND`` if the alias is unknown or unreachable.
        """

    def join_remote_room(room_id, user_id, servers, content):
        """Join a room this server is not in, through one of ``servers``
        (``make_join`` → build and sign → ``send_join``), persisting the returned state.

        :param content: extra membership content (``displayname``, ``reason``, ...).
        :returns: Deferred firing with the join event's ID.
        """

    def invite_remote_user(room_version, room_id, invite_pdu, event_id, invite_room_state):
        """Send an invite of a user on another server to that server for counter-signing.

        :param invite_pdu: our signed invite PDU.
        :param invite_room_state: stripped state events for the invitee's client.
        :returns: Deferred firing with the PDU signed by both servers.
        """

    def leave_remote_room(room_id, user_id, servers, content):
        """Leave (or reject an invite to) a room this server has no joined member in, with
        ``make_leave``/``send_leave`` through one of ``servers``.

        :returns: Deferred firing with the leave event's ID.
        """


@implementer(IRemoteRooms)
class NoRemoteRooms:
    """The :class:`IRemoteRooms` of a server that does not federate: every operation that
    needs another server fails with a clear Matrix error."""

    def _refuse(self, *args, **kwargs):
        return defer.fail(MatrixError(403, "M_FORBIDDEN", "This server does not federate with other servers"))

    def resolve_alias(self, alias):
        return defer.fail(MatrixError(404, "M_NOT_FOUND", f"Room alias {alias} not found"))

    join_remote_room = _refuse
    invite_remote_user = _refuse
    leave_remote_room = _refuse


class IRemoteHistory(Interface):
    """Fetching a room's older history from other servers, for clients paging backwards
    past what this server holds (``GET /messages``)."""

    def fill_gap(room_id, event_ids):
        """Ask the room's other servers for ``event_ids`` (events we do not hold, named as
        ``prev_events`` by events we do) and their predecessors, and store them as history.

        :returns: Deferred firing with the number of events newly stored (0 when no server
            could help); never fails.
        """


@implementer(IRemoteHistory)
class NoRemoteHistory:
    """The :class:`IRemoteHistory` of a server that does not federate: nothing to fetch."""

    def fill_gap(self, room_id, event_ids):
        return defer.succeed(0)
