"""Eventual consistency between a real mxref and a real Synapse after outages and a partition.

The Server-Server API makes a room's history converge however servers come and go:
a sender retries its transactions until they are acknowledged
(https://spec.matrix.org/v1.19/server-server-api/#transactions), a receiver that
sees an event whose ``prev_events`` it lacks asks for them with
``POST /get_missing_events`` and may backfill older history with ``GET /backfill``
("Backfilling and retrieving missing events",
https://spec.matrix.org/v1.19/server-server-api/#backfilling-and-retrieving-missing-events),
and concurrent branches of the room DAG merge through state resolution
(https://spec.matrix.org/v1.19/rooms/v2/#state-resolution, the algorithm of room
versions 2 and later). These tests check that end to end:

* an outage: one server is stopped while the other's user sends 50 messages and changes
  the topic; after the restart all of it reaches the stopped server's user (first Synapse
  down, then mxref down). Catch-up may hand over only the newest event and leave the
  receiver to fetch the gap (Synapse fetches at most 10 missing events and backfills the
  rest when its client pages ``/messages``), so the reader pages back from its latest
  sync token until every event is found;
* a partition: a :class:`mxref.testing.proxy.ForwardingProxy` stands in front of each
  server's federation port and each server is named ``localhost:<its proxy port>``, so
  cutting both proxies parts the servers while their clients still reach them. Both
  sides talk, one changes the topic, the proxies heal, and both servers end up with all
  the messages and the same topic.

This module starts its own Synapse and mxref (behind the proxies), so the shared pair
of ``test_federation_synapse`` is never stopped or cut. The tests run when
``MXREF_SYNAPSE_PYTHON`` names an interpreter with ``matrix-synapse`` installed.
"""

import atexit
import os
import shutil
import tempfile
import time

from twisted.trial import unittest

from mxref.testing.csclient import timeline_events
from mxref.testing.processes import MxrefProcess, SynapseProcess, free_port
from mxref.testing.proxy import ForwardingProxy
from tests.interop.test_federation_synapse import (
    SKIP_SYNAPSE,
    SYNAPSE_PYTHON,
    get_state,
    new_user,
    put_state,
    wait_for_event,
    wait_for_membership,
)

#: How long every sent event has to reach the other server after a restart or a heal.
CONVERGENCE_DEADLINE_S = 90.0

#: Synapse waits ten minutes before retrying an unreachable server by default (it retries at
#: once when that server contacts it); a shorter schedule keeps a missed wake-up from
#: stalling the test for minutes.
SYNAPSE_RETRY_SCHEDULE = {
    "federation": {
        "destination_min_retry_interval": "2s",
        "destination_retry_multiplier": 2,
        "destination_max_retry_interval": "10s",
    }
}

#: Room timelines long enough that one sync shows a whole burst.
BIG_TIMELINE = {"room": {"timeline": {"limit": 100}}}

_servers = {}


def partitionable_servers():
    """This module's Synapse and mxref, each behind a forwarding proxy that is its federation
    address; started on first use and stopped at exit.

    :returns: ``(synapse, mxref, synapse_proxy, mxref_proxy)``.
    """
    if "pair" not in _servers:
        workdir = tempfile.mkdtemp(prefix="mxref-consistency-")
        atexit.register(shutil.rmtree, workdir, True)
        synapse_name_port, mxref_name_port = free_port(), free_port()
        synapse = SynapseProcess(
            os.path.join(workdir, "synapse"),
            python=SYNAPSE_PYTHON,
            server_name=f"localhost:{synapse_name_port}",
            config_overrides=SYNAPSE_RETRY_SCHEDULE,
        )
        mxref = MxrefProcess(
            os.path.join(workdir, "mxref"), server_name=f"localhost:{mxref_name_port}"
        )
        synapse_proxy = ForwardingProxy(synapse.federation_port, listen_port=synapse_name_port)
        mxref_proxy = ForwardingProxy(mxref.federation_port, listen_port=mxref_name_port)
        for proxy in (synapse_proxy, mxref_proxy):
            proxy.start()
            atexit.register(proxy.close)
        synapse.start()
        atexit.register(synapse.stop)
        try:
            mxref.start()
        except BaseException:
            synapse.stop()
            raise
        atexit.register(mxref.stop)
        _servers["pair"] = (synapse, mxref, synapse_proxy, mxref_proxy)
    return _servers["pair"]


def room_event_ids(client, room_id, since, max_pages=6):
    """The event IDs of ``room_id`` that ``client``'s server shows now: one /sync from ``since``
    (an initial sync when ``None``), then ``/messages`` paged backwards from its ``next_batch``
    (which lets a server backfill the gaps it knows of).

    :returns: ``(event_ids, next_batch)``.
    """
    response = client.sync(since=since, timeout_ms=1000 if since else 0, filter=BIG_TIMELINE)
    seen = {e["event_id"] for e in timeline_events(response, room_id)}
    token = response["next_batch"]
    for _ in range(max_pages):
        page = client.messages(room_id, from_token=token, direction="b", limit=100)
        seen.update(e["event_id"] for e in page.get("chunk", []))
        if not page.get("chunk") or not page.get("end") or page["end"] == token:
            break
        token = page["end"]
    return seen, response["next_batch"]


def wait_for_all_events(client, room_id, event_ids):
    """Poll ``client``'s server (/sync, then /messages paged back) until every one of
    ``event_ids`` shows in ``room_id``; fail after :data:`CONVERGENCE_DEADLINE_S`."""
    missing = set(event_ids)
    since = None
    deadline = time.monotonic() + CONVERGENCE_DEADLINE_S
    while True:
        seen, since = room_event_ids(client, room_id, since)
        missing -= seen
        if not missing:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(missing)} of {len(event_ids)} events never reached {client.user_id} "
                f"within {CONVERGENCE_DEADLINE_S}s"
            )
        time.sleep(1)


def wait_for_topic(client, room_id, topic):
    """Poll ``GET /rooms/{roomId}/state/m.room.topic`` on ``client``'s server until it is
    ``topic``; fail after :data:`CONVERGENCE_DEADLINE_S` showing the last answer."""
    deadline = time.monotonic() + CONVERGENCE_DEADLINE_S
    while True:
        content = get_state(client, room_id, "m.room.topic")
        if content is not None and content.get("topic") == topic:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{client.user_id} sees topic {content!r}, not {topic!r}")
        time.sleep(0.5)


class OutageConsistencyWithSynapseTests(unittest.TestCase):
    """A server stopped while the other keeps talking catches up on all of it after a restart."""

    skip = SKIP_SYNAPSE

    def setUp(self):
        self.synapse, self.mxref, _, _ = partitionable_servers()

    def outage(self, down, up):
        """``up``'s user sends 50 messages and sets the topic while ``down`` is stopped; after
        ``down`` restarts, its user sees all 50 messages and the new topic."""
        owner, member = new_user(up, "owner"), new_user(down, "member")
        room_id = owner.create_room(preset="public_chat", topic="before the outage")
        member.join(room_id, via=[up.server_name])
        wait_for_membership(owner, room_id, member.user_id, "join")
        wait_for_event(member, room_id, owner.send_message(room_id, "before"))

        down.stop()
        during = [owner.send_message(room_id, f"during {i}") for i in range(50)]
        topic = f"set while {down.kind} was down"
        during.append(put_state(owner, room_id, "m.room.topic", {"topic": topic}))
        down.start()

        # The revived server's first transaction tells its peer to retry at once.
        member.send_message(room_id, "I am back")
        wait_for_all_events(member, room_id, during)
        wait_for_topic(member, room_id, topic)
        # And the room works both ways afterwards.
        wait_for_event(owner, room_id, member.send_message(room_id, "all caught up"))

    def test_synapse_down_while_mxref_talks(self):
        """50 messages and a topic change sent by an mxref user while Synapse was stopped all
        reach the Synapse user after Synapse restarts."""
        self.outage(down=self.synapse, up=self.mxref)

    def test_mxref_down_while_synapse_talks(self):
        """50 messages and a topic change sent by a Synapse user while mxref was stopped all
        reach the mxref user after mxref restarts."""
        self.outage(down=self.mxref, up=self.synapse)


class PartitionConsistencyWithSynapseTests(unittest.TestCase):
    """Both servers keep talking while unable to reach each other; once the link is back,
    both rooms hold both sides' messages and agree on the state."""

    skip = SKIP_SYNAPSE

    def setUp(self):
        self.synapse, self.mxref, self.synapse_proxy, self.mxref_proxy = partitionable_servers()
        self.addCleanup(self.mxref_proxy.heal)
        self.addCleanup(self.synapse_proxy.heal)

    def partition(self, home, away):
        """A room created on ``home`` with a user of each server is partitioned; each side sends
        10 messages and ``away``'s user changes the topic; after healing both servers converge."""
        owner, member = new_user(home, "owner"), new_user(away, "member")
        # Everyone may set the topic, so the change made on the far side is authorised.
        room_id = owner.create_room(
            preset="public_chat",
            topic="before the partition",
            power_level_content_override={"events": {"m.room.topic": 0}},
        )
        member.join(room_id, via=[home.server_name])
        wait_for_membership(owner, room_id, member.user_id, "join")
        wait_for_event(member, room_id, owner.send_message(room_id, "before"))

        self.synapse_proxy.cut()
        self.mxref_proxy.cut()
        home_sent, away_sent = [], []
        for i in range(10):
            home_sent.append(owner.send_message(room_id, f"{home.kind} side {i}"))
            away_sent.append(member.send_message(room_id, f"{away.kind} side {i}"))
        topic = f"set on {away.kind} during the partition"
        away_sent.append(put_state(member, room_id, "m.room.topic", {"topic": topic}))
        # Each side sees its own branch only: the partition holds.
        wait_for_topic(member, room_id, topic)
        time.sleep(2)
        self.assertEqual(
            get_state(owner, room_id, "m.room.topic").get("topic"), "before the partition"
        )
        self.assertFalse(set(away_sent) & room_event_ids(owner, room_id, None)[0])
        self.assertFalse(set(home_sent) & room_event_ids(member, room_id, None)[0])
        self.synapse_proxy.heal()
        self.mxref_proxy.heal()

        # New traffic on each side makes both senders retry and references both branches.
        sent = home_sent + away_sent
        sent.append(owner.send_message(room_id, "healed, from the room's home"))
        sent.append(member.send_message(room_id, "healed, from the far side"))
        for reader in (owner, member):
            wait_for_all_events(reader, room_id, sent)
            wait_for_topic(reader, room_id, topic)
        self.assertEqual(
            get_state(owner, room_id, "m.room.topic"), get_state(member, room_id, "m.room.topic")
        )

    def test_partition_of_a_synapse_room_merges(self):
        """A Synapse room partitioned from its mxref member: both sides' messages and the topic
        set on mxref during the partition end up on both servers."""
        self.partition(home=self.synapse, away=self.mxref)

    def test_partition_of_an_mxref_room_merges(self):
        """An mxref room partitioned from its Synapse member: both sides' messages and the topic
        set on Synapse during the partition end up on both servers."""
        self.partition(home=self.mxref, away=self.synapse)
