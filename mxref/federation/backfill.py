"""Backfill: fetching a room's older events from other servers when a client pages back
past the history this server holds (after an outage bridged with ``state_ids``, or before
our own join), so that ``/messages`` shows the whole conversation.

Spec: Server-Server API, "Backfilling and retrieving missing events"
(https://spec.matrix.org/v1.19/server-server-api/#backfilling-and-retrieving-missing-events):
``GET /_matrix/federation/v1/backfill/{roomId}?v=...&limit=`` returns the named events and
their predecessors; the requesting server checks them as it would any received PDU. The
events are stored as history: they join the timeline in topological order but change
neither the room's forward extremities nor its current state
(:meth:`~mxref.federation.receiver.pipeline.PduReceiver.receive_historical`).

What keeps a slow or hostile server from stalling anyone: each request is bounded by the
federation client's timeout and by :data:`BACKFILL_LIMIT` events; at most
:data:`MAX_SERVERS_TRIED` servers are asked per gap; a gap nobody could fill is not asked
about again for :data:`RETRY_AFTER_SECONDS`.
"""

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from mxref.errors import MatrixError
from mxref.rooms.interfaces import IRemoteHistory

#: Events asked for in one ``/backfill`` request.
BACKFILL_LIMIT = 100

#: Servers asked, one after the other, before giving up on a gap.
MAX_SERVERS_TRIED = 3

#: Seconds during which a gap no server filled is not asked about again.
RETRY_AFTER_SECONDS = 60

#: How many unfillable gaps are remembered.
MAX_REMEMBERED_GAPS = 1000


@implementer(IRemoteHistory)
class RemoteHistory:
    """Fills gaps in rooms' history with ``/backfill``.

    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore` (which servers are in
        the room).
    :param client: a :class:`~mxref.federation.transport.client.FederationClient`.
    :param receiver: the :class:`~mxref.federation.receiver.pipeline.PduReceiver`.
    :param clock: an ``IReactorTime``.
    :param server_name: our server name.
    """

    log = Logger()

    def __init__(self, rooms, client, receiver, clock, server_name):
        self._rooms = rooms
        self._client = client
        self._receiver = receiver
        self._clock = clock
        self._server_name = server_name
        self._unfillable = {}

    def fill_gap(self, room_id, event_ids):
        """See :meth:`IRemoteHistory.fill_gap`. Returns a Deferred; never fails."""
        d = self._fill_gap(room_id, sorted(set(event_ids)))
        d.addErrback(self._failed, room_id)
        return d

    def _failed(self, failure, room_id):
        self.log.failure("backfill in {room_id} failed", failure, room_id=room_id)
        return 0

    @defer.inlineCallbacks
    def _fill_gap(self, room_id, event_ids):
        if not event_ids:
            return 0
        key = (room_id, tuple(event_ids))
        now = self._clock.seconds()
        if self._unfillable.get(key, 0) > now:
            return 0
        hosts = yield self._rooms.get_joined_hosts(room_id)
        servers = sorted(set(hosts) - {self._server_name})[:MAX_SERVERS_TRIED]
        for server in servers:
            try:
                response = yield self._client.backfill(server, room_id, event_ids, BACKFILL_LIMIT)
            except MatrixError as e:
                self.log.info("backfill from {server} failed: {error}", server=server, error=e)
                continue
            pdus = response.get("pdus") if isinstance(response, dict) else None
            if not isinstance(pdus, list) or not pdus:
                continue
            outcomes = yield self._receiver.receive_historical(server, room_id, pdus[:BACKFILL_LIMIT])
            stored = sum(1 for o in outcomes if o.event_id is not None)
            if stored:
                self.log.info("backfilled {count} events of {room_id} from {server}", count=stored,
                              room_id=room_id, server=server)
                return stored
        if len(self._unfillable) >= MAX_REMEMBERED_GAPS:
            self._unfillable = {k: t for k, t in self._unfillable.items() if t > now}
        if len(self._unfillable) < MAX_REMEMBERED_GAPS:
            self._unfillable[key] = now + RETRY_AFTER_SECONDS
        return 0
