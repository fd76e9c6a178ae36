"""matrix-nio, a real client library, plays the two-user chat scenario against a real Synapse.

The same scenario (mxref.testing.nio_driver.chat_scenario) is meant to run
against mxref once it serves the Client-Server API. Needs
``MXREF_SYNAPSE_PYTHON`` (set up by ``.ci/run``).
"""

import os

from twisted.internet import reactor
from twisted.trial import unittest

from mxref.testing.nio_driver import (
    NioScenarioError,
    chat_scenario,
    run_asyncio,
    run_asyncio_deferred,
)
from mxref.testing.processes import SynapseProcess

SYNAPSE_PYTHON = os.environ.get("MXREF_SYNAPSE_PYTHON")


class RunAsyncioTests(unittest.TestCase):
    """The bridge from trial to an asyncio loop in a thread."""

    def test_result_is_returned(self):
        """A coroutine's return value comes back to the blocking caller."""

        async def add(a, b):
            return a + b

        self.assertEqual(run_asyncio(add, 2, b=3), 5)

    def test_exception_is_raised(self):
        """An exception inside the coroutine is raised in the caller."""

        async def fail():
            raise NioScenarioError("boom")

        self.assertRaises(NioScenarioError, run_asyncio, fail)

    def test_deferred_variant_lets_the_reactor_run(self):
        """run_asyncio_deferred fires its Deferred with the coroutine's result."""

        async def answer():
            return "ok"

        return run_asyncio_deferred(reactor, answer).addCallback(self.assertEqual, "ok")


class NioChatScenarioMixin:
    """The nio chat scenario and what must hold afterwards.

    Mixed into a TestCase that defines ``start_server()``: start the homeserver under test,
    stop it at cleanup, return its process object.
    """

    def test_chat_scenario(self):
        """Bob, through nio, sees Alice's invite, messages and edit in /sync and pages them in /messages."""
        server = self.start_server()
        observed = run_asyncio(chat_scenario, server.client_url, message_count=12, page_size=5)
        self.assertEqual(observed["alice_user_id"], f"@nio_alice:{server.server_name}")
        self.assertEqual(observed["bob_user_id"], f"@nio_bob:{server.server_name}")
        self.assertNotEqual(*observed["bob_device_ids"])
        self.assertTrue(observed["invite_seen"])

        sent, edit_id = observed["sent_event_ids"], observed["edit_event_id"]
        self.assertEqual(len(set(sent + [edit_id])), 13)
        # Bob joined before any message was sent and his filter's timeline limit exceeds the
        # number sent, so his syncs carry them all, in order, without a gap.
        self.assertEqual(observed["synced_message_ids"], sent + [edit_id])
        edit = observed["edit_as_synced"]
        self.assertEqual(
            edit["content"]["m.relates_to"], {"rel_type": "m.replace", "event_id": sent[0]}
        )
        self.assertEqual(edit["sender"], observed["alice_user_id"])

        # Paging backwards returns every message newest first, five events a page, back to the
        # room's creation event.
        self.assertEqual(observed["paged_message_ids"], list(reversed(sent + [edit_id])))
        self.assertEqual(observed["paged_types"][-1], "m.room.create")
        self.assertTrue(all(size <= 5 for size in observed["page_chunk_sizes"]))
        self.assertGreater(len(observed["page_chunk_sizes"]), 3)

        # The server leaves the original content alone (it must not apply the edit itself).
        self.assertEqual(observed["original_as_paged"]["content"]["body"], "nio 0")

    def test_edit_is_bundled_with_original(self):
        """/messages shows the original message with its edit bundled under unsigned.m.relations."""
        server = self.start_server()
        observed = run_asyncio(chat_scenario, server.client_url, message_count=3, page_size=10)
        # Client-Server API, "Server-side aggregation of m.replace relationships": the most
        # recent replacement is bundled with the event it replaces.
        original = observed["original_as_paged"]
        self.assertEqual(
            original["unsigned"]["m.relations"]["m.replace"]["event_id"], observed["edit_event_id"]
        )


class NioAgainstSynapseTests(NioChatScenarioMixin, unittest.TestCase):
    """matrix-nio against Synapse: registration, rooms, edits, sync and paging work end to end."""

    skip = (
        None
        if SYNAPSE_PYTHON
        else "MXREF_SYNAPSE_PYTHON is not set: no Synapse interpreter to start"
    )

    def start_server(self):
        server = SynapseProcess(self.mktemp(), python=SYNAPSE_PYTHON)
        server.start()
        self.addCleanup(server.stop)
        return server
