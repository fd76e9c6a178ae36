"""The federation sender: turns what this server's users do (events, typing, read receipts)
into PDUs and EDUs for every other server in the room, one
:class:`~mxref.federation.sender.queue.DestinationQueue` per server.

Spec: Server-Server API (https://spec.matrix.org/v1.19/server-server-api/):

* "PDUs" and "Transactions": the server that created an event sends it to the other servers
  of the room. Rejected and soft-failed events are never sent (they are not in the
  client-visible stream the sender reads).
* "Joining Rooms", "Leaving Rooms", "Knocking upon a room": the resident server that accepted
  a ``send_join``/``send_leave``/``send_knock`` passes the event on to the room's other
  servers (:meth:`FederationSender.send_on_behalf_of`).
* "Typing Notifications": ``m.typing`` ``{room_id, user_id, typing}`` to the room's servers
  when one of our users starts or stops typing, repeated while they keep typing.
* "Receipts": ``m.receipt`` ``{room_id: {"m.read": {user_id: {event_ids, data}}}}`` for our
  users' public read receipts (private receipts never leave the server).
* "Presence": ``m.presence`` ``{push: [{user_id, presence, status_msg?, last_active_ago,
  currently_active}]}`` to the servers sharing a room with one of our users when their presence
  changes (a server that joins a shared room later hears of it at the next change).

Transaction IDs are ``<startup time in ms>_<counter>``: unique within a run, and a restarted
server starts from a later time, so it never reuses an ID a destination has answered.
"""

import itertools
import secrets

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from mxref.client.presence.tracker import PRESENCE_STREAM
from mxref.client.receipts.service import RECEIPTS_STREAM
from mxref.client.receipts.typing import TYPING_STREAM
from mxref.federation.sender.queue import DestinationQueue
from mxref.federation.sender.routing import EventRouting, server_of
from mxref.rooms.persister import ROOM_EVENTS_STREAM

#: Receipt types that other servers are told about.
FEDERATED_RECEIPT_TYPES = ("m.read",)

#: Seconds between reminders that our users are still typing. A typing EDU carries no
#: timeout, so receivers forget a typer after a while (mxref after 30 s); a client that keeps
#: typing only renews its timeout here, which changes nothing to send.
TYPING_REFRESH_SECONDS = 20


class FederationSender(service.Service):
    """Sends our events and EDUs to the other servers of each room.

    :param events: an :class:`~mxref.storage.interfaces.IEventStore`.
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore`.
    :param federation_store: an :class:`~mxref.storage.interfaces.IFederationStore`.
    :param client_data: an :class:`~mxref.storage.interfaces.IClientDataStore` (receipts).
    :param client: a :class:`~mxref.federation.transport.client.FederationClient`.
    :param notifier: the :class:`~mxref.notifier.Notifier` whose room-event, typing and
        receipt notifications drive the sender (subscribed while the service runs).
    :param typing: the :class:`~mxref.client.receipts.typing.TypingTracker`.
    :param clock: an ``IReactorTime``.
    :param server_name: our server name.
    :param rng: randomness for the retry jitter (``secrets.SystemRandom()`` by default).
    :param presence: the :class:`~mxref.client.presence.tracker.PresenceTracker` (``None``:
        no presence is sent).
    """

    log = Logger()

    def __init__(self, events, rooms, federation_store, client_data, client, notifier, typing, clock, server_name,
                 rng=None, presence=None):
        self._presence = presence
        self._events = events
        self._rooms = rooms
        self._store = federation_store
        self._client_data = client_data
        self._client = client
        self._notifier = notifier
        self._typing = typing
        self._clock = clock
        self._server_name = server_name
        self._rng = rng or secrets.SystemRandom()
        self.routing = EventRouting(events, rooms, server_name)
        self._queues = {}
        self._typing_sent = {}
        self._typing_refresh = None
        self._lock = defer.DeferredLock()
        self._txn_prefix = None
        self._txn_counter = itertools.count(1)

    # -- service ------------------------------------------------------------------------------

    def startService(self):
        """Subscribe to the notifier, resume catch-up for every destination the stored
        stream shows behind, and tell the other servers we have talked to that we are back
        (the returned Deferred fires when that has been started)."""
        super().startService()
        self._notifier.subscribe(self._on_notification)
        self._typing_refresh = task.LoopingCall(self._refresh_typing)
        self._typing_refresh.clock = self._clock
        self._typing_refresh.start(TYPING_REFRESH_SECONDS, now=False)
        d = self._resume_catch_up()
        d.addErrback(lambda f: self.log.failure("could not resume catch-up", f))
        return d

    def stopService(self):
        """Stop listening and cancel the retry timers."""
        self._notifier.unsubscribe(self._on_notification)
        if self._typing_refresh is not None and self._typing_refresh.running:
            self._typing_refresh.stop()
        for queue in self._queues.values():
            queue.stop()
        return super().stopService()

    @defer.inlineCallbacks
    def _resume_catch_up(self):
        upto = yield self._events.get_max_stream_ordering()
        known = yield self._store.get_destinations_behind(upto + 1)
        for record in known:
            if record.last_successful_stream_ordering is None or record.last_successful_stream_ordering < upto:
                self.queue(record.destination).start_catch_up()
            else:
                self._announce(record.destination)

    def _announce(self, destination):
        """Send an empty transaction to a server we have talked to before: we are back, so it
        can stop backing off and send us what it kept for us now, instead of at its next retry
        (a transaction from us wakes its queue, as one from it wakes ours). Failures are only
        logged; nothing waits for the answer."""
        d = self._client.send_transaction(destination, self.next_txn_id(), [], [])
        d.addErrback(lambda f: self.log.info("could not tell {destination} we are back: {error}",
                                             destination=destination, error=f.value))

    # -- queues -------------------------------------------------------------------------------

    def next_txn_id(self) -> str:
        """A transaction ID never used before by this server. Not a Deferred."""
        if self._txn_prefix is None:
            self._txn_prefix = str(int(self._clock.seconds() * 1000))
        return f"{self._txn_prefix}_{next(self._txn_counter)}"

    def queue(self, destination) -> DestinationQueue:
        """The queue of ``destination``, created on first use. Not a Deferred."""
        queue = self._queues.get(destination)
        if queue is None:
            queue = DestinationQueue(
                destination, self._client, self._store, self._events, self.routing, self._clock, self._rng,
                self.next_txn_id,
            )
            self._queues[destination] = queue
        return queue

    def wake_destination(self, server_name) -> None:
        """Called when ``server_name`` contacted us: it is up, so retry anything waiting for it
        now instead of after its back-off. Not a Deferred."""
        if server_name != self._server_name:
            self.queue(server_name).wake()

    @defer.inlineCallbacks
    def idle(self, destinations=None):
        """A Deferred firing once every notification so far has been handled and no queue is
        sending (queues waiting for a retry timer count as idle); for tests.

        :param destinations: wait for these servers' queues only (``None``: all).
        """
        yield self._lock.run(defer.succeed, None)
        for name, queue in sorted(self._queues.items()):
            if destinations is None or name in destinations:
                yield queue.idle()

    # -- notifications ------------------------------------------------------------------------

    def _on_notification(self, notification):
        if notification.stream_name == ROOM_EVENTS_STREAM:
            work = (self._send_new_event, notification.position, sorted(notification.room_ids))
        elif notification.stream_name == TYPING_STREAM:
            work = (self._send_typing, sorted(notification.room_ids))
        elif notification.stream_name == RECEIPTS_STREAM and notification.room_ids:
            work = (self._send_receipts, notification.position, sorted(notification.room_ids))
        elif notification.stream_name == PRESENCE_STREAM and self._presence is not None:
            local = sorted(u for u in notification.user_ids if server_of(u) == self._server_name)
            if not local or not notification.room_ids:
                return
            work = (self._send_presence, local, sorted(notification.room_ids))
        else:
            return
        d = self._lock.run(*work)
        d.addErrback(lambda f: self.log.failure("federation sender could not handle {n}", f, n=notification))

    @defer.inlineCallbacks
    def _send_new_event(self, position, room_ids):
        for room_id in room_ids:
            self.routing.note_room(room_id)
        chunks = yield self._events.get_events_since(position - 1, room_ids, 1, to_stream=position)
        for _room_id, chunk in sorted(chunks.items()):
            for stored in chunk.events:
                if self.routing.is_ours(stored):
                    yield self._enqueue_pdu(stored, exclude=())

    @defer.inlineCallbacks
    def _enqueue_pdu(self, stored, exclude):
        destinations = yield self.routing.destinations_of(stored, live=True)
        pdu = yield self.routing.wire_pdu(stored)
        for destination in sorted(destinations - set(exclude)):
            self.queue(destination).send_pdu(stored.stream_ordering, pdu)

    def send_on_behalf_of(self, origin, event_id):
        """Pass an event another server handed us with ``send_join``, ``send_leave`` or
        ``send_knock`` on to the room's other servers (not back to ``origin``).

        :returns: Deferred firing with ``None`` once the event is queued (nothing is queued
            for an unknown, rejected or soft-failed event).
        """
        return self._lock.run(self._send_on_behalf_of, origin, event_id)

    @defer.inlineCallbacks
    def _send_on_behalf_of(self, origin, event_id):
        stored = yield self._events.get_event(event_id)
        if stored is None or stored.soft_failed or stored.outlier or stored.stream_ordering is None:
            return
        self.routing.note_room(stored.room_id)
        yield self._enqueue_pdu(stored, exclude=(origin,))

    @defer.inlineCallbacks
    def _send_typing(self, room_ids):
        for room_id in room_ids:
            now = {u for u in self._typing.typing_in(room_id) if server_of(u) == self._server_name}
            before = self._typing_sent.pop(room_id, set())
            if now:
                self._typing_sent[room_id] = now
            changes = [(u, True) for u in sorted(now - before)] + [(u, False) for u in sorted(before - now)]
            if not changes:
                continue
            hosts = yield self._rooms.get_joined_hosts(room_id)
            for destination in sorted(set(hosts) - {self._server_name}):
                for user_id, typing in changes:
                    self.queue(destination).send_edu(
                        "m.typing", {"room_id": room_id, "user_id": user_id, "typing": typing}
                    )

    def _refresh_typing(self):
        d = self._lock.run(self._send_typing_reminders)
        d.addErrback(lambda f: self.log.failure("could not refresh typing notifications", f))

    @defer.inlineCallbacks
    def _send_typing_reminders(self):
        """Tell the rooms' servers again about our users who are still typing."""
        for room_id, typers in sorted(self._typing_sent.items()):
            hosts = yield self._rooms.get_joined_hosts(room_id)
            for destination in sorted(set(hosts) - {self._server_name}):
                for user_id in sorted(typers):
                    content = {"room_id": room_id, "user_id": user_id, "typing": True}
                    self.queue(destination).send_edu("m.typing", content)

    @defer.inlineCallbacks
    def _send_receipts(self, position, room_ids):
        receipts = yield self._client_data.get_receipts_since(room_ids, position - 1, position)
        for receipt in receipts:
            if receipt.receipt_type not in FEDERATED_RECEIPT_TYPES:
                continue
            if server_of(receipt.user_id) != self._server_name:
                continue
            data = dict(receipt.data or {})
            if receipt.thread_id is not None:
                data["thread_id"] = receipt.thread_id
            content = {
                receipt.room_id: {
                    receipt.receipt_type: {receipt.user_id: {"event_ids": [receipt.event_id], "data": data}}
                }
            }
            hosts = yield self._rooms.get_joined_hosts(receipt.room_id)
            for destination in sorted(set(hosts) - {self._server_name}):
                self.queue(destination).send_edu("m.receipt", content)

    @defer.inlineCallbacks
    def _send_presence(self, user_ids, room_ids):
        """Push the current presence of our ``user_ids`` to the other servers of ``room_ids``."""
        push = []
        for user_id in user_ids:
            state = self._presence.get(user_id)
            if state is None:
                continue
            content = self._presence.content_of(state)
            item = {
                "user_id": user_id,
                "presence": content["presence"],
                "last_active_ago": content.get("last_active_ago", 0),
                "currently_active": content.get("currently_active", False),
            }
            if "status_msg" in content:
                item["status_msg"] = content["status_msg"]
            push.append(item)
        if not push:
            return
        destinations = set()
        for room_id in room_ids:
            hosts = yield self._rooms.get_joined_hosts(room_id)
            destinations.update(hosts)
        for destination in sorted(destinations - {self._server_name}):
            self.queue(destination).send_edu("m.presence", {"push": push})
