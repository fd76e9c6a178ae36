"""Inbound transactions (``PUT /_matrix/federation/v1/send/{txnId}``): limits, deduplication
per (origin, txnId), PDUs through the pipeline one room at a time, EDUs to their receivers.

Spec: Server-Server API, "Transactions" and ``PUT /send/{txnId}``
(https://spec.matrix.org/v1.19/server-server-api/#transactions): a transaction holds at most
50 PDUs and 100 EDUs; the response ``{"pdus": {event_id: {} | {"error": ...}}}`` is a 200
even when some PDUs fail; a sender retries a transaction with the same ID until it gets a
200, so a repeated (origin, txnId) gets the response of the first delivery.

PDUs of one room are processed in the order received, one after another; different rooms
are processed concurrently. When processing outlasts ``processing_timeout`` seconds the
response is sent with the results so far (PDUs still in progress carry no error, since they
will be processed) and the work carries on, so that the sender is not held beyond its own
request timeout.
"""

from twisted.internet import defer
from twisted.python import failure
from twisted.logger import Logger

from mxref.errors import MatrixError
from mxref.events.hashing import compute_event_id
from mxref.events.room_versions import UnsupportedRoomVersion, get_room_version

#: The spec's limits on one transaction.
MAX_PDUS_PER_TRANSACTION = 50
MAX_EDUS_PER_TRANSACTION = 100

#: Seconds after which a transaction is answered even if PDUs are still being processed.
DEFAULT_PROCESSING_TIMEOUT = 50.0


class TransactionReceiver:
    """Receives transactions from other servers.

    :param federation_store: an :class:`~mxref.storage.interfaces.IFederationStore`
        (received transactions, for deduplication).
    :param rooms: an :class:`~mxref.storage.interfaces.IRoomStore` (room versions, to name
        PDUs in the response).
    :param pdu_receiver: a :class:`~mxref.federation.receiver.pipeline.PduReceiver`.
    :param edu_router: an :class:`~mxref.federation.receiver.edus.EduRouter`.
    :param clock: an ``IReactorTime``.
    :param processing_timeout: seconds before answering with partial results.
    :param origin_seen: called as ``origin_seen(origin)`` for every transaction, since a server
        that sends to us is up (e.g.
        :meth:`mxref.federation.sender.sender.FederationSender.wake_destination`), or ``None``.
    """

    log = Logger()

    def __init__(
        self,
        federation_store,
        rooms,
        pdu_receiver,
        edu_router,
        clock,
        processing_timeout=DEFAULT_PROCESSING_TIMEOUT,
        origin_seen=None,
    ):
        self._store = federation_store
        self._rooms = rooms
        self._pdus = pdu_receiver
        self._edus = edu_router
        self._clock = clock
        self._processing_timeout = processing_timeout
        self._origin_seen = origin_seen
        self._in_flight = {}

    def on_transaction(self, origin, txn_id, body):
        """Process one transaction from an authenticated ``origin``.

        :param body: the request body ``{origin, origin_server_ts, pdus, edus}``.
        :returns: Deferred firing with ``(status, response_body)``.
        :raises MatrixError: 400 ``M_BAD_JSON`` (through the Deferred) for a malformed
            transaction or one over the limits.
        """
        try:
            pdus, edus = _parse_transaction(body)
        except MatrixError as e:
            return defer.fail(e)
        if self._origin_seen is not None:
            try:
                self._origin_seen(origin)
            except Exception:
                self.log.failure("origin_seen({origin}) failed", origin=origin)
        # Every caller (the first delivery and any retry arriving meanwhile) gets a Deferred of
        # its own: a caller that goes away (its Deferred cancelled when the connection drops)
        # neither stops the processing nor takes the answer from the others.
        waiting = defer.Deferred()
        key = (origin, txn_id)
        if key in self._in_flight:
            self._in_flight[key].append(waiting)
            return waiting
        self._in_flight[key] = [waiting]
        processing = defer.ensureDeferred(self._process(origin, txn_id, pdus, edus))

        def answer(result):
            for caller in self._in_flight.pop(key, []):
                if not caller.called:
                    caller.callback(result)
            if isinstance(result, failure.Failure):
                self.log.failure(
                    "transaction {txn_id} from {origin} failed",
                    result,
                    txn_id=txn_id,
                    origin=origin,
                )

        processing.addBoth(answer)
        return waiting

    async def _process(self, origin, txn_id, pdus, edus):
        previous = await self._store.get_received_txn(origin, txn_id)
        if previous is not None:
            self.log.debug(
                "repeated transaction {txn_id} from {origin}", txn_id=txn_id, origin=origin
            )
            return previous.response_code, previous.response

        results = {}
        by_room = {}
        for pdu in pdus:
            event_id = await self._event_id_for_response(pdu)
            if event_id is None:
                continue
            results[event_id] = {}
            room_id = pdu.get("room_id") if isinstance(pdu, dict) else None
            by_room.setdefault(room_id, []).append((event_id, pdu))

        rooms_done = [
            defer.ensureDeferred(self._process_room(origin, entries, results))
            for entries in by_room.values()
        ]
        edus_done = defer.ensureDeferred(self._route_edus(origin, edus))
        everything = defer.DeferredList(rooms_done + [edus_done], consumeErrors=True)
        await self._wait_at_most(everything, self._processing_timeout)

        response = {"pdus": {event_id: dict(result) for event_id, result in results.items()}}
        await self._store.set_received_txn(
            origin, txn_id, 200, response, int(self._clock.seconds() * 1000)
        )
        return 200, response

    async def _process_room(self, origin, entries, results):
        for event_id, pdu in entries:
            try:
                outcome = await self._pdus.receive_pdu(origin, pdu)
            except Exception as e:
                self.log.failure(
                    "processing {event_id} from {origin} failed", event_id=event_id, origin=origin
                )
                results[event_id] = {"error": f"internal error: {type(e).__name__}"}
                continue
            results[event_id] = outcome.transaction_result()

    async def _route_edus(self, origin, edus):
        for edu in edus:
            await self._edus.route(origin, edu)

    def _wait_at_most(self, d, seconds):
        """A Deferred firing when ``d`` does or after ``seconds``, whichever comes first;
        ``d`` itself is never cancelled."""
        done = defer.Deferred()
        timer = self._clock.callLater(seconds, lambda: done.called or done.callback(None))

        def fired(result):
            if timer.active():
                timer.cancel()
            if not done.called:
                done.callback(None)
            return result

        d.addBoth(fired)
        return done

    async def _event_id_for_response(self, pdu):
        """The ID to report a PDU's result under: computed with its room's version, or the
        ``event_id`` it carries; ``None`` when it has neither (then it is skipped)."""
        if not isinstance(pdu, dict):
            return None
        room_id = pdu.get("room_id")
        version_id = (
            await self._rooms.get_room_version(room_id) if isinstance(room_id, str) else None
        )
        if version_id is not None:
            try:
                return compute_event_id(
                    {k: v for k, v in pdu.items() if k != "unsigned"}, get_room_version(version_id)
                )
            except (UnsupportedRoomVersion, MatrixError, ValueError, TypeError):
                pass
        event_id = pdu.get("event_id")
        return event_id if isinstance(event_id, str) else None


def _parse_transaction(body):
    """The ``pdus`` and ``edus`` lists of a transaction body, within the spec's limits."""
    if not isinstance(body, dict):
        raise MatrixError(400, "M_BAD_JSON", "A transaction must be a JSON object")
    pdus = body.get("pdus")
    edus = body.get("edus", [])
    if not isinstance(pdus, list):
        raise MatrixError(400, "M_BAD_JSON", "A transaction needs a 'pdus' array")
    if edus is None:
        edus = []
    if not isinstance(edus, list):
        raise MatrixError(400, "M_BAD_JSON", "'edus' must be an array")
    if len(pdus) > MAX_PDUS_PER_TRANSACTION:
        raise MatrixError(
            400, "M_BAD_JSON", f"A transaction holds at most {MAX_PDUS_PER_TRANSACTION} PDUs"
        )
    if len(edus) > MAX_EDUS_PER_TRANSACTION:
        raise MatrixError(
            400, "M_BAD_JSON", f"A transaction holds at most {MAX_EDUS_PER_TRANSACTION} EDUs"
        )
    return pdus, edus
