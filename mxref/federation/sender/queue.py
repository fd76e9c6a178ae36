"""Everything waiting to go to one remote server, sent one transaction at a time, with
retry back-off and catch-up from the stored event stream.

Spec: Server-Server API, "Transactions" (https://spec.matrix.org/v1.19/server-server-api/#transactions):
a transaction carries at most 50 PDUs and 100 EDUs, and "the sending server must wait for
a 200 response before sending a transaction with a different ``txnId`` to the same
destination" – so each queue has at most one transaction in flight. The retry schedule and
catch-up are ours (:mod:`mxref.federation.sender.backoff`).

How a queue works:

* While the destination is healthy, new PDUs and EDUs wait in memory and go out as soon as
  the previous transaction was answered, at most 50 PDUs and 100 EDUs each time.
* When a transaction fails (network error, timeout, non-2xx answer) the queue records the
  failure in :class:`~mxref.storage.interfaces.IFederationStore` (``retry_last_ts``,
  ``retry_interval``, ``failure_ts``), drops its in-memory PDUs and switches to catch-up:
  from then on PDUs are read from the stored event stream, above the destination's
  ``last_successful_stream_ordering``. EDUs are kept (up to :data:`MAX_PENDING_EDUS`).
* When the retry delay has passed, catch-up sends what the destination missed, oldest
  first, or only the newest event of each room when it missed too much (it then fetches
  the gap with ``get_missing_events``). Success clears the back-off.
* Because the retry state and the stream position are stored, a restarted server resumes
  both (:meth:`~mxref.federation.sender.sender.FederationSender.startService`).
* A request from the destination to us shows it is up: :meth:`DestinationQueue.wake` drops
  the back-off and retries at once.
"""

from collections import deque

from twisted.internet import defer
from twisted.logger import Logger

from mxref.federation.sender.backoff import MIN_RETRY_MS, attempts_for_interval, retry_delay_ms

#: The spec's limits on one transaction.
MAX_PDUS_PER_TRANSACTION = 50
MAX_EDUS_PER_TRANSACTION = 100

#: The most EDUs kept for an unreachable destination; older ones are dropped first.
MAX_PENDING_EDUS = 1000


class DestinationQueue:
    """The outbound queue of one remote server.

    :param destination: the remote server's name.
    :param client: a :class:`~mxref.federation.transport.client.FederationClient` (only
        ``send_transaction`` is used; its timeout bounds how long a dead server holds the
        queue).
    :param federation_store: an :class:`~mxref.storage.interfaces.IFederationStore`.
    :param events: an :class:`~mxref.storage.interfaces.IEventStore` (the stream position).
    :param routing: a :class:`~mxref.federation.sender.routing.EventRouting` (what the
        destination missed).
    :param clock: an ``IReactorTime`` for the retry timer and timestamps.
    :param rng: randomness for the retry jitter (``random()``).
    :param next_txn_id: a callable returning a transaction ID never used before.
    """

    log = Logger()

    def __init__(self, destination, client, federation_store, events, routing, clock, rng, next_txn_id):
        self.destination = destination
        self._client = client
        self._store = federation_store
        self._events = events
        self._routing = routing
        self._clock = clock
        self._rng = rng
        self._next_txn_id = next_txn_id

        self._pdus = []
        self._edus = deque()
        self._catching_up = False
        self._missed_while_catching_up = False
        self._loaded = False
        self._position = None
        self._woken_before_load = False
        self._attempt = 0
        self._retry_last_ts = 0
        self._retry_interval = 0
        self._failure_ts = None
        self._timer = None
        self._running = False
        self._idle_waiters = []
        self.transactions_sent = 0

    # -- what callers see ---------------------------------------------------------------------

    @property
    def is_catching_up(self) -> bool:
        """Whether PDUs are being read from the stored stream rather than from memory."""
        return self._catching_up

    @property
    def retry_interval_ms(self) -> int:
        """The current back-off in milliseconds, 0 when the destination is healthy."""
        return self._retry_interval

    @property
    def pending_edu_count(self) -> int:
        """How many EDUs wait to be sent."""
        return len(self._edus)

    def send_pdu(self, stream_ordering, pdu) -> None:
        """Queue one of our events (in federation form) for the destination. Not a Deferred.

        :param stream_ordering: its position in the room-event stream.
        """
        if self._position is not None and stream_ordering <= self._position:
            # Catch-up already delivered it.
            return
        if self._catching_up:
            # It is in the stored stream: catch-up will read it.
            self._missed_while_catching_up = True
        else:
            self._pdus.append((stream_ordering, pdu))
        self._kick()

    def send_edu(self, edu_type, content) -> None:
        """Queue an EDU. Not a Deferred."""
        self._edus.append({"edu_type": edu_type, "content": content})
        while len(self._edus) > MAX_PENDING_EDUS:
            self._edus.popleft()
        self._kick()

    def start_catch_up(self) -> None:
        """Send whatever the stored stream holds for the destination above its last
        successful position (on startup). Not a Deferred."""
        self._enter_catch_up()
        self._kick()

    def wake(self) -> None:
        """The destination contacted us, so it is up: forget the back-off and send whatever
        waits now. Not a Deferred."""
        if not self._loaded:
            self._woken_before_load = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._retry_interval:
            self.log.info("{destination} is back: retrying now", destination=self.destination)
        self._attempt = 0
        self._retry_interval = 0
        self._retry_last_ts = 0
        self._kick()

    def idle(self):
        """A Deferred firing (with ``None``) once nothing is being sent: the queue is empty or
        waits for its retry timer."""
        if not self._running:
            return defer.succeed(None)
        d = defer.Deferred()
        self._idle_waiters.append(d)
        return d

    def stop(self) -> None:
        """Cancel the retry timer (the server is shutting down). Not a Deferred."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    # -- the sending loop ---------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock.seconds() * 1000)

    def _enter_catch_up(self):
        """Switch to reading PDUs from the stored stream; drop those held in memory.

        :returns: the lowest stream ordering dropped, or ``None``.
        """
        lowest = min((o for o, _ in self._pdus), default=None)
        self._catching_up = True
        self._missed_while_catching_up = True
        self._pdus = []
        return lowest

    @defer.inlineCallbacks
    def _remember_position(self, lowest_unsent):
        """Make sure the destination has a stored position below ``lowest_unsent`` (once its
        stored state is loaded): a server we never reached has none, and catch-up starts from
        it."""
        if lowest_unsent is not None and self._position is None:
            yield self._set_position(lowest_unsent - 1)

    @defer.inlineCallbacks
    def _set_position(self, stream_ordering):
        """Store that the destination has everything of ours up to ``stream_ordering``."""
        self._position = stream_ordering
        yield self._store.set_destination_last_successful_stream_ordering(self.destination, stream_ordering)

    def _has_work(self) -> bool:
        return self._catching_up or bool(self._pdus) or bool(self._edus)

    def _retry_due_in_ms(self) -> int:
        """Milliseconds until the back-off allows a new attempt, 0 when it does now."""
        if not self._retry_interval:
            return 0
        return max(0, self._retry_last_ts + self._retry_interval - self._now_ms())

    def _kick(self):
        if self._running:
            return
        self._run().addErrback(self._crashed)

    def _crashed(self, failure):
        """Something other than the destination failed (e.g. the database): log it and try
        again after the shortest back-off rather than leave the queue stuck."""
        self.log.failure("queue for {destination} failed", failure, destination=self.destination)
        self._schedule_retry(MIN_RETRY_MS)

    @defer.inlineCallbacks
    def _run(self):
        self._running = True
        try:
            if not self._loaded:
                yield self._load()
            while self._has_work():
                wait_ms = self._retry_due_in_ms()
                if wait_ms:
                    self._schedule_retry(wait_ms)
                    break
                # A failure below puts the queue in back-off: the next turn waits for it.
                if self._catching_up:
                    yield self._catch_up_round()
                    continue
                pdus = self._pdus[:MAX_PDUS_PER_TRANSACTION]
                del self._pdus[: len(pdus)]
                yield self._transmit(pdus, self._take_edus())
        finally:
            self._running = False
            waiters, self._idle_waiters = self._idle_waiters, []
            for d in waiters:
                d.callback(None)

    @defer.inlineCallbacks
    def _load(self):
        """Read the stored retry state (once), so a restart resumes the back-off."""
        record = yield self._store.get_destination(self.destination)
        self._loaded = True
        if record is not None:
            self._position = record.last_successful_stream_ordering
        if record is None or self._woken_before_load or not record.retry_interval:
            return
        self._retry_last_ts = record.retry_last_ts
        self._retry_interval = record.retry_interval
        self._failure_ts = record.failure_ts
        self._attempt = attempts_for_interval(record.retry_interval)
        # PDUs for a destination in back-off come from the stored stream.
        yield self._remember_position(self._enter_catch_up())

    def _take_edus(self):
        edus = []
        while self._edus and len(edus) < MAX_EDUS_PER_TRANSACTION:
            edus.append(self._edus.popleft())
        return edus

    def _schedule_retry(self, delay_ms):
        if self._timer is not None and self._timer.active():
            return
        self._timer = self._clock.callLater(delay_ms / 1000.0, self._retry_due)

    def _retry_due(self):
        self._timer = None
        self._kick()

    @defer.inlineCallbacks
    def _transmit(self, pdus, edus):
        """Send one transaction; record the outcome.

        :param pdus: ``[(stream_ordering, wire PDU)]``.
        :returns: Deferred firing with ``True`` on success, ``False`` after a failure (which
            has been recorded and has put the queue in back-off and catch-up).
        """
        # First PDUs to this server: record where it stands, so that a restart (or a failure)
        # before they are delivered resumes from the stored stream.
        yield self._remember_position(min((o for o, _ in pdus), default=None))
        txn_id = self._next_txn_id()
        try:
            response = yield self._client.send_transaction(self.destination, txn_id, [p for _, p in pdus], edus)
        except Exception as e:
            yield self._record_failure(e, edus)
            return False
        self.transactions_sent += 1
        results = response.get("pdus") if isinstance(response, dict) else None
        for event_id, result in sorted((results or {}).items()):
            if isinstance(result, dict) and result.get("error"):
                # The destination took the transaction; it refused this event, and sending it
                # again would not change its mind.
                self.log.info("{destination} refused {event_id}: {error}", destination=self.destination,
                              event_id=event_id, error=result["error"])
        yield self._record_success(max((o for o, _ in pdus), default=None))
        return True

    @defer.inlineCallbacks
    def _record_success(self, stream_ordering):
        if self._retry_interval or self._failure_ts is not None or self._attempt:
            self._attempt = 0
            self._retry_interval = 0
            self._retry_last_ts = 0
            self._failure_ts = None
            yield self._store.set_destination_retry(self.destination, 0, 0, None)
        if stream_ordering is not None and (self._position is None or stream_ordering > self._position):
            yield self._set_position(stream_ordering)

    @defer.inlineCallbacks
    def _record_failure(self, error, edus):
        now = self._now_ms()
        self._attempt += 1
        self._retry_interval = retry_delay_ms(self._attempt, self._rng)
        self._retry_last_ts = now
        if self._failure_ts is None:
            self._failure_ts = now
        self.log.info(
            "could not send to {destination} ({error}); retry {attempt} in {interval} ms",
            destination=self.destination, error=error, attempt=self._attempt, interval=self._retry_interval,
        )
        self._edus.extendleft(reversed(edus))
        # The PDUs in memory (and those that failed) are in the stored stream above the
        # destination's last successful position: catch-up will send them.
        yield self._remember_position(self._enter_catch_up())
        yield self._store.set_destination_retry(self.destination, now, self._retry_interval, self._failure_ts)

    @defer.inlineCallbacks
    def _catch_up_round(self):
        """Send what the destination missed up to the current end of the stream.

        :returns: Deferred firing with ``True`` when the round finished (catch-up ends unless
            new events arrived meanwhile), ``False`` after a failed transaction.
        """
        self._missed_while_catching_up = False
        record = yield self._store.get_destination(self.destination)
        after = record.last_successful_stream_ordering if record is not None else None
        if after is not None:
            upto = yield self._events.get_max_stream_ordering()
            if upto > after:
                missed, too_far = yield self._routing.missed_events(self.destination, after, upto)
                if too_far:
                    self.log.info("{destination} is too far behind: sending the newest event of each room",
                                  destination=self.destination)
                for start in range(0, len(missed), MAX_PDUS_PER_TRANSACTION):
                    ok = yield self._transmit(missed[start:start + MAX_PDUS_PER_TRANSACTION], self._take_edus())
                    if not ok:
                        return False
                yield self._set_position(upto)
        if not self._missed_while_catching_up:
            self._catching_up = False
        return True
