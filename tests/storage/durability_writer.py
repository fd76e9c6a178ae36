"""A child process for the durability test: persists events forever, printing each acknowledgement.

Usage: ``python -m tests.storage.durability_writer '<database config as JSON>'``.
After each ``persist_events`` Deferred fires (the point where the homeserver
would answer the client with 200), it prints ``acked <event_id> <stream_ordering>``.
The test kills it with SIGKILL at an arbitrary moment and checks every
acknowledged event is in the database.
"""

import json
import sys

from twisted.internet import defer, task

from mxref.storage.database import make_database
from mxref.storage.records import PersistBatch, RoomUpdate
from mxref.storage.sql.store import make_store
from tests.storage.harness import EventFactory


@defer.inlineCallbacks
def write_forever(reactor, config_json):
    """Persist one message after another, reporting each as it is acknowledged."""
    database = yield make_database(json.loads(config_json), reactor)
    store = make_store(database)
    factory = EventFactory("!durable:example.org")
    prev = []
    depth = 1
    while True:
        event = factory.make("m.room.message", depth=depth, prev=prev, content={"body": f"message {depth}"})
        orderings = yield store.events.persist_events(
            PersistBatch([event], [RoomUpdate(factory.room_id, forward_extremities=[event.event_id])])
        )
        sys.stdout.write(f"acked {event.event_id} {orderings[event.event_id]}\n")
        sys.stdout.flush()
        prev = [event.event_id]
        depth += 1


if __name__ == "__main__":
    task.react(write_forever, sys.argv[1:2])
