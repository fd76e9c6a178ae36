"""A homeserver killed with SIGKILL while a client sends keeps every acknowledged event.

Client-Server API "Sending events to a room" (``PUT /rooms/{roomId}/send/{eventType}/{txnId}``):
a 200 means the event is part of the room, and "the transaction ID ... is used by the server
to ensure idempotency of requests": a retry with the same ``txnId`` (same access token) gives
the same ``event_id``. Both must hold across a crash, on SQLite and on PostgreSQL.

The server is a real ``twistd -n mxref`` process (:class:`~mxref.testing.processes.MxrefProcess`);
one client thread sends messages back to back and records each 200; after a random short
delay the test kills the server, starts it again on the same data and checks what survived.
"""

import http.client
import os
import random
import threading
import time
from urllib.parse import quote

from twisted.trial import unittest

from mxref.testing.csclient import MatrixRequestError
from mxref.testing.processes import MxrefProcess
from tests.storage.harness import POSTGRES_ENV, create_postgres_database

#: The random delays (seconds) before the kill; a seed is logged with each failure.
KILL_AFTER = (0.3, 1.5)


class _Sender(threading.Thread):
    """Sends ``m.room.message`` events back to back until a request fails.

    :ivar acknowledged: ``[(txn_id, body, event_id)]`` of every PUT answered 200, in order.
    :ivar in_flight: ``(txn_id, body)`` of the request that failed (the server died under
        it), or ``None``.
    :ivar error: a Matrix error answer, which no request should get.
    """

    def __init__(self, client, room_id):
        super().__init__(daemon=True)
        self.client = client
        self.room_id = room_id
        self.acknowledged = []
        self.in_flight = None
        self.error = None

    def run(self):
        n = 0
        while True:
            txn_id, body = f"crash-{n}", f"message {n}"
            try:
                event_id = self.client.send_message(self.room_id, body, txn_id=txn_id)
            except MatrixRequestError as e:
                self.error = e
                self.in_flight = (txn_id, body)
                return
            except (OSError, http.client.HTTPException):
                # The server died under this request: it may or may not have been stored.
                self.in_flight = (txn_id, body)
                return
            self.acknowledged.append((txn_id, body, event_id))
            n += 1


class CrashDurabilityMixin:
    """The scenario; subclasses give :meth:`database`."""

    def database(self):
        """A Synapse-format ``database`` mapping for the server, or ``None`` for SQLite."""
        return None

    def all_messages(self, client, room_id):
        """Every ``m.room.message`` in the room, oldest first, read back with /messages."""
        events, token = [], None
        for _ in range(1000):
            page = client.messages(room_id, from_token=token, direction="b", limit=100)
            events.extend(e for e in page["chunk"] if e["type"] == "m.room.message")
            token = page.get("end")
            if not page["chunk"] or token is None:
                break
        events.reverse()
        return events

    def test_acknowledged_events_survive_a_kill(self):
        """After SIGKILL mid-stream and a restart, every 200'd event is there once, and retried txn IDs give the stored event."""
        seed = int(os.environ.get("MXREF_CRASH_SEED", random.randrange(2**32)))
        rng = random.Random(seed)
        started = time.monotonic()
        server = MxrefProcess(self.mktemp(), database=self.database())
        server.start()
        self.addCleanup(server.stop)
        client = server.client_for("writer")
        room_id = client.create_room(preset="private_chat")

        sender = _Sender(client, room_id)
        sender.start()
        time.sleep(rng.uniform(*KILL_AFTER))
        server.kill()
        sender.join(30)
        self.assertFalse(sender.is_alive(), "the sender did not notice the server died")
        self.assertIsNone(sender.error, f"seed {seed}: a request failed before the kill: {sender.error}")
        acknowledged = sender.acknowledged
        self.assertGreater(len(acknowledged), 0, f"seed {seed}: nothing was sent before the kill")

        server.start()
        client.close()
        room = quote(room_id, safe="")
        for _, body, event_id in acknowledged:
            event = client.request(
                "GET", f"/_matrix/client/v3/rooms/{room}/event/{quote(event_id, safe='')}"
            )
            self.assertEqual(event["content"]["body"], body, f"seed {seed}")

        messages = self.all_messages(client, room_id)
        ids = [e["event_id"] for e in messages]
        bodies = [e["content"]["body"] for e in messages]
        self.assertEqual(len(ids), len(set(ids)), f"seed {seed}: an event is listed twice")
        self.assertEqual(len(bodies), len(set(bodies)), f"seed {seed}: a message was stored twice")
        acked_ids = [event_id for _, _, event_id in acknowledged]
        # /messages lists the acknowledged events in the order they were acknowledged.
        self.assertEqual([i for i in ids if i in set(acked_ids)], acked_ids, f"seed {seed}")
        # Whatever else is there can only be the request in flight at the kill.
        extra = [e for e in messages if e["event_id"] not in set(acked_ids)]
        self.assertLessEqual(len(extra), 1, f"seed {seed}: {extra}")
        if extra:
            self.assertEqual(extra[0]["content"]["body"], sender.in_flight[1], f"seed {seed}")

        # Retrying with the same transaction IDs gives back the stored events.
        for txn_id, body, event_id in acknowledged[-5:]:
            self.assertEqual(client.send_message(room_id, body, txn_id=txn_id), event_id)
        txn_id, body = sender.in_flight
        retried = client.send_message(room_id, body, txn_id=txn_id)
        if extra:
            self.assertEqual(retried, extra[0]["event_id"], f"seed {seed}")
        after = self.all_messages(client, room_id)
        self.assertEqual(
            [e["event_id"] for e in after if e["content"]["body"] == body], [retried], f"seed {seed}"
        )
        self.assertEqual(len(after), len(acknowledged) + 1, f"seed {seed}")
        self.assertLess(time.monotonic() - started, 60, "the crash scenario ran far too long")


class SqliteCrashTests(CrashDurabilityMixin, unittest.TestCase):
    """twistd mxref on SQLite, killed mid-stream."""


class PostgresCrashTests(CrashDurabilityMixin, unittest.TestCase):
    """twistd mxref on PostgreSQL, killed mid-stream."""

    def database(self):
        dsn = os.environ.get(POSTGRES_ENV)
        if not dsn:
            raise unittest.SkipTest(
                f"{POSTGRES_ENV} (a libpq DSN of a throwaway PostgreSQL, set by .ci/run) is not set"
            )
        config, drop = create_postgres_database(dsn)
        self.addCleanup(drop)
        return config
