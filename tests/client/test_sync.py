"""``GET /sync`` over HTTP on a real SQLite store, with the room services making the events,
checked against the spec's OpenAPI schema; and the token codec."""

import random
from urllib.parse import urlencode

from hypothesis import given, strategies as st
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from mxref.auth.tokens import Requester
from mxref.client.account_data.resource import AccountDataResource
from mxref.client.account_data.service import AccountDataService
from mxref.client.filters.resource import FilterResource
from mxref.client.filters.service import FilterService
from mxref.client.receipts.typing import TypingTracker
from mxref.client.sync.resource import SyncResource
from mxref.client.sync.service import RECEIPTS_STREAM, SyncService
from mxref.client.tokens import (
    StreamToken,
    TopologicalToken,
    format_room_position,
    parse_pagination_token,
)
from mxref.client.visibility import EventVisibility
from mxref.errors import MatrixError
from mxref.events.signing import generate_signing_key
from mxref.notifier import Notifier
from mxref.rooms.creator import EventCreator
from mxref.rooms.interfaces import NoRemoteRooms
from mxref.rooms.membership import MembershipUpdater
from mxref.rooms.persister import EventPersister
from mxref.rooms.room_creation import RoomCreator
from mxref.rooms.state import RoomStateReader
from mxref.storage.records import RoomPosition
from tests.client.support import ClientApiHarness, deferred_test
from tests.schema import validate_response

SYNC_API = "client-server/sync.yaml"


class SyncFixture:
    """A client API harness plus every room service, the sync, filter and account data resources."""

    @deferred_test
    async def setUp(self):
        self.harness = harness = await ClientApiHarness.create(self)
        store, clock = harness.store, harness.clock
        self.store = store
        self.notifier = Notifier(clock)
        state_reader = RoomStateReader(store.events, store.state)
        persister = EventPersister(store.events, state_reader, self.notifier)
        self.creator = EventCreator(
            store.events,
            store.rooms,
            state_reader,
            persister,
            harness.server_name,
            generate_signing_key("a1"),
            clock,
        )
        self.membership = MembershipUpdater(
            store.events,
            store.rooms,
            store.accounts,
            self.creator,
            NoRemoteRooms(),
            harness.server_name,
        )
        self.room_creator = RoomCreator(
            self.creator, self.membership, store.rooms, store.accounts, harness.server_name
        )
        filters = FilterService(store.client_data)
        self.typing = TypingTracker(clock, self.notifier)
        self.sync_service = SyncService(
            store.events,
            store.rooms,
            store.client_data,
            EventVisibility(store.events, store.state, store.rooms),
            self.creator,
            filters,
            self.notifier,
            clock,
            typing=self.typing,
        )
        harness.add_routes(
            SyncResource(self.sync_service, harness.authenticator),
            FilterResource(filters, harness.authenticator),
            AccountDataResource(
                AccountDataService(store.client_data, self.notifier), harness.authenticator
            ),
        )
        self.alice = await harness.register_user("alice")
        self.bob = await harness.register_user("bob")
        self.carol = await harness.register_user("carol")

    async def sync(self, user, version="v3", expect=200, **params):
        """GET /sync with query parameters; checks the status and the spec schema."""
        path = f"/_matrix/client/{version}/sync" + (f"?{urlencode(params)}" if params else "")
        response = await self.harness.request("GET", path, token=user.access_token)
        self.assertEqual(response.code, expect, response.body)
        validate_response(SYNC_API, "/sync", "get", expect, response.json())
        return response.json()

    async def message(self, user, room_id, body, **extra):
        event_id, _ = await self.creator.send_event(
            room_id, user.user_id, "m.room.message", {"msgtype": "m.text", "body": body, **extra}
        )
        return event_id

    async def room(self, user, **kwargs):
        self.harness.clock.advance(1)
        return await self.room_creator.create_room(user.user_id, **kwargs)


def timeline_bodies(room_entry):
    return [
        e["content"].get("body")
        for e in room_entry["timeline"]["events"]
        if e["type"] == "m.room.message"
    ]


def types_of(events):
    return [(e["type"], e.get("state_key")) for e in events]


class InitialSyncTests(SyncFixture, unittest.TestCase):
    """A sync without ``since``."""

    @deferred_test
    async def test_after_room_creation(self):
        """A new room shows its creation events in the timeline, a summary and a next_batch token."""
        room_id = await self.room(self.alice, preset="private_chat", name="Plans")
        body = await self.sync(self.alice)
        entry = body["rooms"]["join"][room_id]
        timeline_types = types_of(entry["timeline"]["events"])
        self.assertEqual(timeline_types[0], ("m.room.create", ""))
        self.assertIn(("m.room.member", self.alice.user_id), timeline_types)
        self.assertIn(("m.room.name", ""), timeline_types)
        self.assertFalse(entry["timeline"]["limited"])
        self.assertEqual(entry["state"]["events"], [])
        self.assertEqual(entry["summary"]["m.joined_member_count"], 1)
        self.assertEqual(entry["summary"]["m.invited_member_count"], 0)
        self.assertEqual(
            entry["unread_notifications"], {"highlight_count": 0, "notification_count": 0}
        )
        for event in entry["timeline"]["events"]:
            self.assertNotIn("room_id", event)
            self.assertIn("age", event["unsigned"])
        StreamToken.parse(body["next_batch"])
        self.assertEqual(body["presence"], {"events": []})
        self.assertEqual(body["device_lists"], {"changed": [], "left": []})

    @deferred_test
    async def test_transaction_id_only_for_the_sending_device(self):
        """The device that sent a message sees its transaction ID in unsigned; others do not."""
        room_id = await self.room(self.alice, preset="public_chat")
        await self.membership.join(self.bob.user_id, room_id)
        event_id, _ = await self.creator.send_event(
            room_id, self.alice.user_id, "m.room.message", {"msgtype": "m.text", "body": "hi"},
            txn=(self.alice.device_id, "txn-1"),
        )
        other_device = await self.harness.login.start_session(self.alice.user_id)
        for user, token, expected in (
            (self.alice, self.alice.access_token, "txn-1"),
            (self.bob, self.bob.access_token, None),
            (self.alice, other_device[1], None),
        ):
            response = await self.harness.request("GET", "/_matrix/client/v3/sync", token=token)
            events = response.json()["rooms"]["join"][room_id]["timeline"]["events"]
            sent = [e for e in events if e["event_id"] == event_id][0]
            self.assertEqual(sent["unsigned"].get("transaction_id"), expected)

    @deferred_test
    async def test_typing_appears_and_stops(self):
        """Typing shows in ephemeral on initial sync, and a stop shows incrementally."""
        room_id = await self.room(self.alice, preset="public_chat")
        await self.membership.join(self.bob.user_id, room_id)
        self.typing.set_typing(room_id, self.bob.user_id, True, 30000)
        first = await self.sync(self.alice)
        ephemeral = first["rooms"]["join"][room_id]["ephemeral"]["events"]
        self.assertIn({"type": "m.typing", "content": {"user_ids": [self.bob.user_id]}}, ephemeral)
        self.typing.set_typing(room_id, self.bob.user_id, False)
        second = await self.sync(self.alice, since=first["next_batch"])
        ephemeral = second["rooms"]["join"][room_id]["ephemeral"]["events"]
        self.assertIn({"type": "m.typing", "content": {"user_ids": []}}, ephemeral)
        third = await self.sync(self.alice, since=second["next_batch"])
        self.assertNotIn(room_id, third["rooms"]["join"])

    @deferred_test
    async def test_forgotten_room_is_not_in_leave(self):
        """A room the user left and forgot is not sent in the leave section again."""
        room_id = await self.room(self.alice, preset="public_chat")
        await self.membership.join(self.bob.user_id, room_id)
        await self.membership.leave(self.bob.user_id, room_id)
        include_leave = '{"room": {"include_leave": true}}'
        body = await self.sync(self.bob, filter=include_leave)
        self.assertIn(room_id, body["rooms"]["leave"])
        await self.store.rooms.forget_room(self.bob.user_id, room_id)
        body = await self.sync(self.bob, filter=include_leave)
        self.assertNotIn(room_id, body["rooms"]["leave"])

    @deferred_test
    async def test_r0_path(self):
        """The legacy r0 path serves the same sync."""
        room_id = await self.room(self.alice)
        body = await self.sync(self.alice, version="r0")
        self.assertIn(room_id, body["rooms"]["join"])

    @deferred_test
    async def test_limited_timeline_has_state_and_prev_batch(self):
        """With more events than the limit, the state before the timeline is sent and prev_batch pages back."""
        room_id = await self.room(self.alice, preset="public_chat")
        sent = [await self.message(self.alice, room_id, f"m{n}") for n in range(12)]
        body = await self.sync(self.alice)
        entry = body["rooms"]["join"][room_id]
        self.assertTrue(entry["timeline"]["limited"])
        self.assertEqual(timeline_bodies(entry), [f"m{n}" for n in range(2, 12)])
        state_types = types_of(entry["state"]["events"])
        for key in [
            ("m.room.create", ""),
            ("m.room.member", self.alice.user_id),
            ("m.room.power_levels", ""),
            ("m.room.join_rules", ""),
        ]:
            self.assertIn(key, state_types)
        position = parse_pagination_token(entry["timeline"]["prev_batch"])
        self.assertIsNone(position.topological)
        older = await self.store.events.get_room_events_stream(room_id, position, None, 2, "b")
        self.assertEqual([e.event_id for e in older], [sent[1], sent[0]])

    @deferred_test
    async def test_filters_by_id_and_inline(self):
        """A timeline limit and types, from a stored filter ID or inline JSON, shape the timeline."""
        room_id = await self.room(self.alice)
        for n in range(4):
            await self.message(self.alice, room_id, f"m{n}")
        created = await self.harness.request(
            "POST",
            f"/_matrix/client/v3/user/{self.alice.user_id}/filter",
            {"room": {"timeline": {"limit": 2}}},
            token=self.alice.access_token,
        )
        body = await self.sync(self.alice, filter=created.json()["filter_id"])
        entry = body["rooms"]["join"][room_id]
        self.assertEqual(timeline_bodies(entry), ["m2", "m3"])
        self.assertTrue(entry["timeline"]["limited"])

        inline = '{"room":{"timeline":{"types":["m.room.mes*"],"limit":3},"state":{"types":["m.room.create"]}}}'
        body = await self.sync(self.alice, filter=inline)
        entry = body["rooms"]["join"][room_id]
        self.assertEqual(types_of(entry["timeline"]["events"]), [("m.room.message", None)] * 3)
        self.assertEqual(types_of(entry["state"]["events"]), [("m.room.create", "")])

        fields = '{"event_fields":["type","content.body"],"room":{"timeline":{"types":["m.room.message"]}}}'
        response = await self.harness.request(
            "GET",
            "/_matrix/client/v3/sync?" + urlencode({"filter": fields}),
            token=self.alice.access_token,
        )
        body = response.json()
        self.assertEqual(
            body["rooms"]["join"][room_id]["timeline"]["events"][-1],
            {"type": "m.room.message", "content": {"body": "m3"}},
        )

    @deferred_test
    async def test_room_filter_excludes_rooms(self):
        """The room filter's not_rooms leaves a room out of every section."""
        first = await self.room(self.alice)
        second = await self.room(self.alice)
        body = await self.sync(self.alice, filter='{"room":{"not_rooms":["%s"]}}' % first)
        self.assertEqual(list(body["rooms"]["join"]), [second])

    @deferred_test
    async def test_lazy_loading_members(self):
        """With lazy_load_members, state holds only the members who sent timeline events (and the user)."""
        room_id = await self.room(self.alice, preset="public_chat")
        await self.membership.join(self.bob.user_id, room_id)
        await self.membership.join(self.carol.user_id, room_id)
        for n in range(10):
            await self.message(self.bob, room_id, f"b{n}")
        lazy = '{"room":{"state":{"lazy_load_members":true}}}'
        body = await self.sync(self.alice, filter=lazy)
        members = {
            e["state_key"]
            for e in body["rooms"]["join"][room_id]["state"]["events"]
            if e["type"] == "m.room.member"
        }
        self.assertEqual(members, {self.alice.user_id, self.bob.user_id})
        body = await self.sync(self.alice)
        members = {
            e["state_key"]
            for e in body["rooms"]["join"][room_id]["state"]["events"]
            if e["type"] == "m.room.member"
        }
        self.assertEqual(members, {self.alice.user_id, self.bob.user_id, self.carol.user_id})

    @deferred_test
    async def test_use_state_after(self):
        """With use_state_after, state_after holds the state at the end of the timeline and state is omitted."""
        room_id = await self.room(self.alice, name="Before")
        await self.creator.send_event(
            room_id, self.alice.user_id, "m.room.name", {"name": "After"}, state_key=""
        )
        body = await self.sync(self.alice, use_state_after="true")
        entry = body["rooms"]["join"][room_id]
        self.assertNotIn("state", entry)
        names = [
            e["content"]["name"]
            for e in entry["state_after"]["events"]
            if e["type"] == "m.room.name"
        ]
        self.assertEqual(names, ["After"])

    @deferred_test
    async def test_never_sees_other_rooms(self):
        """A user sees nothing of rooms they are not in, however many events they hold."""
        room_id = await self.room(self.alice, preset="public_chat")
        await self.message(self.alice, room_id, "private to members")
        body = await self.sync(self.bob)
        self.assertEqual(body["rooms"], {"join": {}, "invite": {}, "leave": {}, "knock": {}})
        since = body["next_batch"]
        await self.message(self.alice, room_id, "still private")
        body = await self.sync(self.bob, since=since)
        self.assertEqual(body["rooms"]["join"], {})

    @deferred_test
    async def test_prev_content_on_timeline_state(self):
        """A state event in the timeline that replaced another carries unsigned.prev_content."""
        room_id = await self.room(self.alice, name="One")
        await self.creator.send_event(
            room_id, self.alice.user_id, "m.room.name", {"name": "Two"}, state_key=""
        )
        body = await self.sync(self.alice)
        names = [
            e
            for e in body["rooms"]["join"][room_id]["timeline"]["events"]
            if e["type"] == "m.room.name"
        ]
        self.assertNotIn("prev_content", names[0]["unsigned"])
        self.assertEqual(names[1]["unsigned"]["prev_content"], {"name": "One"})

    @deferred_test
    async def test_summary_heroes(self):
        """A room without a name lists other members as heroes (never the user); a named room needs none."""
        unnamed = await self.room(self.alice, preset="public_chat")
        named = await self.room(self.alice, preset="public_chat", name="Named")
        for room_id in (unnamed, named):
            await self.membership.join(self.bob.user_id, room_id)
        await self.membership.invite(self.alice.user_id, unnamed, self.carol.user_id)
        body = await self.sync(self.alice)
        summary = body["rooms"]["join"][unnamed]["summary"]
        self.assertEqual(
            summary,
            {
                "m.heroes": [self.bob.user_id, self.carol.user_id],
                "m.joined_member_count": 2,
                "m.invited_member_count": 1,
            },
        )
        self.assertNotIn("m.heroes", body["rooms"]["join"][named]["summary"])

    @deferred_test
    async def test_zero_timeline_limit(self):
        """A timeline limit of 0 sends no timeline events, marks the timeline limited and sends the state."""
        room_id = await self.room(self.alice, name="Quiet")
        body = await self.sync(self.alice, filter='{"room":{"timeline":{"limit":0}}}')
        entry = body["rooms"]["join"][room_id]
        self.assertEqual(entry["timeline"]["events"], [])
        self.assertTrue(entry["timeline"]["limited"])
        self.assertIn(("m.room.name", ""), types_of(entry["state"]["events"]))

    @deferred_test
    async def test_knock(self):
        """A knock appears in rooms.knock with stripped state ending with the knock."""
        room_id = await self.room(
            self.alice,
            preset="private_chat",
            initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
        )
        first = await self.sync(self.bob)
        await self.creator.send_event(
            room_id,
            self.bob.user_id,
            "m.room.member",
            {"membership": "knock"},
            state_key=self.bob.user_id,
        )
        body = await self.sync(self.bob, since=first["next_batch"])
        stripped = body["rooms"]["knock"][room_id]["knock_state"]["events"]
        self.assertIn(("m.room.create", ""), types_of(stripped))
        self.assertEqual(
            (stripped[-1]["sender"], stripped[-1]["content"]["membership"]),
            (self.bob.user_id, "knock"),
        )
        self.assertEqual(body["rooms"]["join"], {})


class IncrementalSyncTests(SyncFixture, unittest.TestCase):
    """Syncs with ``since``."""

    @deferred_test
    async def test_only_new_messages(self):
        """An incremental sync sends only what happened after since; nothing new means no room entry."""
        room_id = await self.room(self.alice)
        await self.message(self.alice, room_id, "old")
        first = await self.sync(self.alice)
        await self.message(self.alice, room_id, "new")
        second = await self.sync(self.alice, since=first["next_batch"])
        entry = second["rooms"]["join"][room_id]
        self.assertEqual(timeline_bodies(entry), ["new"])
        self.assertEqual(len(entry["timeline"]["events"]), 1)
        self.assertFalse(entry["timeline"]["limited"])
        self.assertEqual(entry["state"]["events"], [])
        third = await self.sync(self.alice, since=second["next_batch"])
        self.assertEqual(third["rooms"]["join"], {})
        self.assertEqual(third["next_batch"], second["next_batch"])

    @deferred_test
    async def test_limited_incremental_sends_state_gap(self):
        """A limited incremental timeline sends the state that changed between since and its start."""
        room_id = await self.room(self.alice, preset="public_chat", name="Old name")
        first = await self.sync(self.alice)
        await self.creator.send_event(
            room_id, self.alice.user_id, "m.room.name", {"name": "New"}, state_key=""
        )
        await self.membership.join(self.bob.user_id, room_id)
        for n in range(10):
            await self.message(self.alice, room_id, f"m{n}")
        body = await self.sync(self.alice, since=first["next_batch"])
        entry = body["rooms"]["join"][room_id]
        self.assertTrue(entry["timeline"]["limited"])
        self.assertEqual(
            sorted(types_of(entry["state"]["events"])),
            [("m.room.member", self.bob.user_id), ("m.room.name", "")],
        )
        self.assertEqual(entry["state"]["events"][1]["content"], {"name": "New"})
        self.assertEqual(entry["summary"]["m.joined_member_count"], 2)

    @deferred_test
    async def test_full_state(self):
        """full_state=true sends the whole state and every joined room, even without changes."""
        room_id = await self.room(self.alice)
        first = await self.sync(self.alice)
        body = await self.sync(
            self.alice, since=first["next_batch"], full_state="true", timeout="60000"
        )
        entry = body["rooms"]["join"][room_id]
        self.assertIn(("m.room.create", ""), types_of(entry["state"]["events"]))

    @deferred_test
    async def test_joined_since_gets_full_state(self):
        """A room joined since the last sync arrives with its full state, as in an initial sync."""
        room_id = await self.room(self.alice, preset="public_chat", name="Lobby")
        for n in range(12):
            await self.message(self.alice, room_id, f"m{n}")
        first = await self.sync(self.bob)
        await self.membership.join(self.bob.user_id, room_id)
        body = await self.sync(self.bob, since=first["next_batch"])
        entry = body["rooms"]["join"][room_id]
        state_types = types_of(entry["state"]["events"])
        self.assertIn(("m.room.create", ""), state_types)
        self.assertIn(("m.room.name", ""), state_types)
        self.assertIn(("m.room.member", self.alice.user_id), state_types)
        self.assertEqual(
            types_of(entry["timeline"]["events"])[-1], ("m.room.member", self.bob.user_id)
        )

    @deferred_test
    async def test_invite_then_join(self):
        """An invite appears in rooms.invite with stripped state (create and the invite), then moves to join."""
        room_id = await self.room(self.alice, preset="private_chat", name="Secret", topic="shh")
        await self.message(self.alice, room_id, "before the invite")
        first = await self.sync(self.bob)
        await self.membership.invite(self.alice.user_id, room_id, self.bob.user_id)
        body = await self.sync(self.bob, since=first["next_batch"])
        self.assertEqual(list(body["rooms"]["invite"]), [room_id])
        self.assertEqual(body["rooms"]["join"], {})
        stripped = body["rooms"]["invite"][room_id]["invite_state"]["events"]
        keys = types_of(stripped)
        self.assertIn(("m.room.create", ""), keys)
        self.assertIn(("m.room.name", ""), keys)
        self.assertEqual(
            (stripped[-1]["type"], stripped[-1]["state_key"], stripped[-1]["sender"]),
            ("m.room.member", self.bob.user_id, self.alice.user_id),
        )
        self.assertEqual(stripped[-1]["content"]["membership"], "invite")
        for event in stripped:
            self.assertEqual(set(event), {"type", "state_key", "sender", "content"})
        initial = await self.sync(self.bob)
        self.assertEqual(list(initial["rooms"]["invite"]), [room_id])

        again = await self.sync(self.bob, since=body["next_batch"])
        self.assertEqual(again["rooms"]["invite"], {})
        await self.membership.join(self.bob.user_id, room_id)
        joined = await self.sync(self.bob, since=body["next_batch"])
        self.assertEqual(joined["rooms"]["invite"], {})
        self.assertIn(room_id, joined["rooms"]["join"])

    @deferred_test
    async def test_leave_section(self):
        """Leaving puts the room in rooms.leave with the timeline up to the leave; later messages stay unseen."""
        room_id = await self.room(self.alice, preset="public_chat")
        await self.membership.join(self.bob.user_id, room_id)
        first = await self.sync(self.bob)
        await self.message(self.alice, room_id, "goodbye bob")
        await self.membership.leave(self.bob.user_id, room_id)
        await self.message(self.alice, room_id, "after bob left")
        body = await self.sync(self.bob, since=first["next_batch"])
        self.assertEqual(body["rooms"]["join"], {})
        entry = body["rooms"]["leave"][room_id]
        self.assertEqual(timeline_bodies(entry), ["goodbye bob"])
        self.assertEqual(
            types_of(entry["timeline"]["events"])[-1], ("m.room.member", self.bob.user_id)
        )
        self.assertEqual(entry["timeline"]["events"][-1]["content"]["membership"], "leave")

        later = await self.sync(self.bob, since=body["next_batch"])
        self.assertEqual(later["rooms"]["leave"], {})
        initial = await self.sync(self.bob)
        self.assertEqual(initial["rooms"]["leave"], {})
        with_leave = await self.sync(self.bob, filter='{"room":{"include_leave":true}}')
        entry = with_leave["rooms"]["leave"][room_id]
        self.assertNotIn("after bob left", timeline_bodies(entry))
        self.assertIn(("m.room.create", ""), types_of(entry["state"]["events"]))
        self.assertEqual(
            types_of(entry["timeline"]["events"])[0], ("m.room.member", self.bob.user_id)
        )

    @deferred_test
    async def test_kick_and_ban_go_to_leave(self):
        """Being kicked or banned puts the room in rooms.leave."""
        room_id = await self.room(self.alice, preset="public_chat")
        await self.membership.join(self.bob.user_id, room_id)
        first = await self.sync(self.bob)
        await self.membership.set_membership_of_other(
            self.alice.user_id, room_id, self.bob.user_id, "ban"
        )
        body = await self.sync(self.bob, since=first["next_batch"])
        last = body["rooms"]["leave"][room_id]["timeline"]["events"][-1]
        self.assertEqual(
            (last["state_key"], last["content"]["membership"]), (self.bob.user_id, "ban")
        )

    @deferred_test
    async def test_rejected_invite_shows_no_room_state(self):
        """Rejecting an invite reports the room as left with only the user's own membership events."""
        room_id = await self.room(self.alice, preset="private_chat")
        await self.message(self.alice, room_id, "members only")
        first = await self.sync(self.bob)
        await self.membership.invite(self.alice.user_id, room_id, self.bob.user_id)
        await self.membership.leave(self.bob.user_id, room_id)
        body = await self.sync(self.bob, since=first["next_batch"])
        entry = body["rooms"]["leave"][room_id]
        self.assertEqual(entry["state"]["events"], [])
        for event in entry["timeline"]["events"]:
            self.assertEqual(
                (event["type"], event["state_key"]), ("m.room.member", self.bob.user_id)
            )

    @deferred_test
    async def test_account_data_in_sync(self):
        """Global and per-room account data reach sync once, after being set, and are filterable."""
        room_id = await self.room(self.alice)
        first = await self.sync(self.alice)
        base = f"/_matrix/client/v3/user/{self.alice.user_id}"
        await self.harness.request(
            "PUT",
            f"{base}/account_data/org.example.theme",
            {"dark": True},
            token=self.alice.access_token,
        )
        await self.harness.request(
            "PUT",
            f"{base}/rooms/{room_id}/account_data/m.tag",
            {"tags": {"u.x": {}}},
            token=self.alice.access_token,
        )
        body = await self.sync(self.alice, since=first["next_batch"])
        self.assertEqual(
            body["account_data"]["events"],
            [{"type": "org.example.theme", "content": {"dark": True}}],
        )
        entry = body["rooms"]["join"][room_id]
        self.assertEqual(
            entry["account_data"]["events"], [{"type": "m.tag", "content": {"tags": {"u.x": {}}}}]
        )
        self.assertEqual(entry["timeline"]["events"], [])
        again = await self.sync(self.alice, since=body["next_batch"])
        self.assertEqual(again["account_data"]["events"], [])
        self.assertEqual(again["rooms"]["join"], {})
        initial = await self.sync(
            self.alice, filter='{"account_data":{"not_types":["org.example.*"]}}'
        )
        self.assertEqual(initial["account_data"]["events"], [])
        self.assertEqual(len(initial["rooms"]["join"][room_id]["account_data"]["events"]), 1)
        bobs = await self.sync(self.bob)
        self.assertEqual(bobs["account_data"]["events"], [])

    @deferred_test
    async def test_receipts_in_ephemeral(self):
        """Receipts arrive as m.receipt in ephemeral; other users' private receipts do not."""
        room_id = await self.room(self.alice, preset="public_chat")
        await self.membership.join(self.bob.user_id, room_id)
        event_id = await self.message(self.alice, room_id, "read me")
        first = await self.sync(self.alice)
        await self.store.client_data.put_receipt(
            room_id, "m.read", self.bob.user_id, event_id, {"ts": 1}
        )
        await self.store.client_data.put_receipt(
            room_id, "m.read.private", self.bob.user_id, event_id, {"ts": 2}
        )
        body = await self.sync(self.alice, since=first["next_batch"])
        ephemeral = body["rooms"]["join"][room_id]["ephemeral"]["events"]
        self.assertEqual(
            ephemeral,
            [
                {
                    "type": "m.receipt",
                    "content": {event_id: {"m.read": {self.bob.user_id: {"ts": 1}}}},
                }
            ],
        )
        bobs = await self.sync(self.bob)
        receipt_types = set(
            bobs["rooms"]["join"][room_id]["ephemeral"]["events"][0]["content"][event_id]
        )
        self.assertEqual(receipt_types, {"m.read", "m.read.private"})

    @deferred_test
    async def test_newly_joined_room_gets_earlier_receipts(self):
        """A room joined since the last sync comes with the receipts sent before the join."""
        room_id = await self.room(self.alice, preset="public_chat")
        event_id = await self.message(self.alice, room_id, "seen")
        await self.store.client_data.put_receipt(
            room_id, "m.read", self.alice.user_id, event_id, {"ts": 7}
        )
        first = await self.sync(self.bob)
        await self.membership.join(self.bob.user_id, room_id)
        body = await self.sync(self.bob, since=first["next_batch"])
        ephemeral = body["rooms"]["join"][room_id]["ephemeral"]["events"]
        self.assertEqual(
            ephemeral[0]["content"], {event_id: {"m.read": {self.alice.user_id: {"ts": 7}}}}
        )

    @deferred_test
    async def test_redacted_event_in_timeline(self):
        """A redacted message is served pruned with unsigned.redacted_because."""
        room_id = await self.room(self.alice)
        event_id = await self.message(self.alice, room_id, "oops")
        await self.creator.send_event(
            room_id, self.alice.user_id, "m.room.redaction", {"redacts": event_id}, redacts=event_id
        )
        body = await self.sync(self.alice)
        events = {e["event_id"]: e for e in body["rooms"]["join"][room_id]["timeline"]["events"]}
        self.assertEqual(events[event_id]["content"], {})
        self.assertEqual(
            events[event_id]["unsigned"]["redacted_because"]["type"], "m.room.redaction"
        )

    @deferred_test
    async def test_history_visibility_joined(self):
        """With history_visibility joined, a newcomer's timeline starts at their join."""
        room_id = await self.room(
            self.alice,
            preset="public_chat",
            initial_state=[
                {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}
            ],
        )
        await self.message(self.alice, room_id, "before bob")
        first = await self.sync(self.bob)
        await self.membership.join(self.bob.user_id, room_id)
        await self.message(self.alice, room_id, "after bob")
        body = await self.sync(self.bob, since=first["next_batch"])
        self.assertEqual(timeline_bodies(body["rooms"]["join"][room_id]), ["after bob"])

    @deferred_test
    async def test_ignored_users(self):
        """Messages and invites from ignored users are not sent; their state events are."""
        room_id = await self.room(self.alice, preset="public_chat")
        await self.membership.join(self.bob.user_id, room_id)
        await self.harness.request(
            "PUT",
            f"/_matrix/client/v3/user/{self.alice.user_id}/account_data/m.ignored_user_list",
            {"ignored_users": {self.bob.user_id: {}, self.carol.user_id: {}}},
            token=self.alice.access_token,
        )
        first = await self.sync(self.alice)
        await self.message(self.bob, room_id, "ignored")
        await self.creator.send_event(
            room_id,
            self.bob.user_id,
            "m.room.member",
            {"membership": "join", "displayname": "Bobby"},
            state_key=self.bob.user_id,
        )
        await self.message(self.alice, room_id, "mine")
        carols_room = await self.room(self.carol, preset="private_chat")
        await self.membership.invite(self.carol.user_id, carols_room, self.alice.user_id)
        body = await self.sync(self.alice, since=first["next_batch"])
        entry = body["rooms"]["join"][room_id]
        self.assertEqual(
            types_of(entry["timeline"]["events"]),
            [("m.room.member", self.bob.user_id), ("m.room.message", None)],
        )
        self.assertEqual(timeline_bodies(entry), ["mine"])
        self.assertEqual(body["rooms"]["invite"], {})

    @deferred_test
    async def test_federation_event_format(self):
        """event_format federation serves the events as PDUs, with hashes and signatures."""
        room_id = await self.room(self.alice)
        await self.message(self.alice, room_id, "raw")
        response = await self.harness.request(
            "GET",
            "/_matrix/client/v3/sync?" + urlencode({"filter": '{"event_format":"federation"}'}),
            token=self.alice.access_token,
        )
        last = response.json()["rooms"]["join"][room_id]["timeline"]["events"][-1]
        self.assertEqual(last["content"]["body"], "raw")
        self.assertIn("signatures", last)
        self.assertIn("hashes", last)
        self.assertIn("prev_events", last)


class SyncSequenceTests(SyncFixture, unittest.TestCase):
    """Many incremental syncs in a row."""

    @deferred_test
    async def test_every_message_exactly_once_in_order(self):
        """Messages in several rooms, with syncs in between, each reach the member once and in order."""
        rng = random.Random(7)
        users = [self.alice, self.bob, self.carol]
        room_ids = [await self.room(self.alice, preset="public_chat") for _ in range(3)]
        for room_id in room_ids:
            for user in users[1:]:
                await self.membership.join(user.user_id, room_id)
        sent = {room_id: [] for room_id in room_ids}
        received = {room_id: [] for room_id in room_ids}
        since = (await self.sync(self.alice))["next_batch"]
        big_timeline = '{"room":{"timeline":{"limit":100,"types":["m.room.message"]}}}'
        for step in range(40):
            room_id = rng.choice(room_ids)
            sent[room_id].append(await self.message(rng.choice(users), room_id, f"step {step}"))
            if rng.random() < 0.3:
                body = await self.sync(self.alice, since=since, filter=big_timeline)
                for joined_room, entry in body["rooms"]["join"].items():
                    self.assertFalse(entry["timeline"]["limited"])
                    received[joined_room] += [e["event_id"] for e in entry["timeline"]["events"]]
                since = body["next_batch"]
        body = await self.sync(self.alice, since=since, filter=big_timeline)
        for joined_room, entry in body["rooms"]["join"].items():
            received[joined_room] += [e["event_id"] for e in entry["timeline"]["events"]]
        self.assertEqual(received, sent)


class SyncErrorTests(SyncFixture, unittest.TestCase):
    """Bad requests to ``/sync``."""

    @deferred_test
    async def test_bad_since_token(self):
        """A since token that mxref never wrote gives 400 M_INVALID_PARAM."""
        for token in ("garbage", "s1_2", "t1_2", "s-1_0_0", ""):
            response = await self.harness.request(
                "GET", f"/_matrix/client/v3/sync?since={token}", token=self.alice.access_token
            )
            self.assertEqual(
                (response.code, response.json()["errcode"]), (400, "M_INVALID_PARAM"), token
            )

    @deferred_test
    async def test_bad_filters(self):
        """An unknown filter ID, another user's filter, or a malformed inline filter give 400 M_INVALID_PARAM."""
        created = await self.harness.request(
            "POST",
            f"/_matrix/client/v3/user/{self.bob.user_id}/filter",
            {},
            token=self.bob.access_token,
        )
        for value in (
            "999",
            created.json()["filter_id"],
            "{not json",
            '{"room":{"timeline":{"limit":"x"}}}',
            "{}]",
        ):
            response = await self.harness.request(
                "GET",
                "/_matrix/client/v3/sync?" + urlencode({"filter": value}),
                token=self.alice.access_token,
            )
            self.assertEqual(
                (response.code, response.json()["errcode"]), (400, "M_INVALID_PARAM"), value
            )

    @deferred_test
    async def test_bad_query_parameters(self):
        """A non-integer timeout, a bad full_state or set_presence give 400 M_INVALID_PARAM; no token 401."""
        for query in ("timeout=soon", "timeout=-5", "full_state=yes", "set_presence=away"):
            response = await self.harness.request(
                "GET", f"/_matrix/client/v3/sync?{query}", token=self.alice.access_token
            )
            self.assertEqual(
                (response.code, response.json()["errcode"]), (400, "M_INVALID_PARAM"), query
            )
        for presence in ("offline", "online", "unavailable"):
            await self.sync(self.alice, set_presence=presence)
        response = await self.harness.request("GET", "/_matrix/client/v3/sync")
        self.assertEqual(response.code, 401)


class LongPollTests(SyncFixture, unittest.TestCase):
    """``timeout``: waiting for news on the notifier, with the harness's fake clock."""

    async def wait_for_waiter(self):
        for _ in range(2000):
            if self.notifier.waiter_count():
                return
            await task.deferLater(reactor, 0.002, lambda: None)
        self.fail("the sync request never started waiting")

    def start_sync(self, user, **params):
        return defer.ensureDeferred(
            self.harness.request(
                "GET", f"/_matrix/client/v3/sync?{urlencode(params)}", token=user.access_token
            )
        )

    @deferred_test
    async def test_wakes_on_message_from_other_user(self):
        """A waiting sync returns as soon as another member sends a message, with that message."""
        room_id = await self.room(self.alice, preset="public_chat")
        await self.membership.join(self.bob.user_id, room_id)
        first = await self.sync(self.alice)
        pending = self.start_sync(self.alice, since=first["next_batch"], timeout=30000)
        await self.wait_for_waiter()
        self.assertFalse(pending.called)
        await self.message(self.bob, room_id, "wake up")
        response = await pending
        body = response.json()
        validate_response(SYNC_API, "/sync", "get", 200, body)
        self.assertEqual(timeline_bodies(body["rooms"]["join"][room_id]), ["wake up"])
        self.assertEqual(self.notifier.waiter_count(), 0)

    @deferred_test
    async def test_times_out_empty(self):
        """With nothing new, the sync answers an empty response with the same token once the timeout passes."""
        await self.room(self.alice)
        first = await self.sync(self.alice)
        pending = self.start_sync(self.alice, since=first["next_batch"], timeout=30000)
        await self.wait_for_waiter()
        self.harness.clock.advance(29)
        self.assertFalse(pending.called)
        self.harness.clock.advance(1.5)
        response = await pending
        body = response.json()
        self.assertEqual(body["rooms"]["join"], {})
        self.assertEqual(body["next_batch"], first["next_batch"])

    @deferred_test
    async def test_irrelevant_events_do_not_wake(self):
        """Messages in a room the user is not in leave a waiting sync waiting; an invite wakes it."""
        other_room = await self.room(self.carol, preset="private_chat")
        first = await self.sync(self.alice)
        pending = self.start_sync(self.alice, since=first["next_batch"], timeout=30000)
        await self.wait_for_waiter()
        await self.message(self.carol, other_room, "not for alice")
        self.assertEqual(self.notifier.waiter_count(), 1)
        self.assertFalse(pending.called)
        await self.membership.invite(self.carol.user_id, other_room, self.alice.user_id)
        body = (await pending).json()
        self.assertEqual(list(body["rooms"]["invite"]), [other_room])

    @deferred_test
    async def test_account_data_wakes(self):
        """Setting account data wakes the owner's waiting sync."""
        first = await self.sync(self.alice)
        pending = self.start_sync(self.alice, since=first["next_batch"], timeout=30000)
        await self.wait_for_waiter()
        await self.harness.request(
            "PUT",
            f"/_matrix/client/v3/user/{self.alice.user_id}/account_data/a.b",
            {"v": 1},
            token=self.alice.access_token,
        )
        body = (await pending).json()
        self.assertEqual(body["account_data"]["events"], [{"type": "a.b", "content": {"v": 1}}])

    @deferred_test
    async def test_receipts_notification_wakes(self):
        """A receipt announced on the receipts stream for a joined room wakes the sync."""
        room_id = await self.room(self.alice)
        event_id = await self.message(self.alice, room_id, "hi")
        first = await self.sync(self.alice)
        pending = self.start_sync(self.alice, since=first["next_batch"], timeout=30000)
        await self.wait_for_waiter()
        position = await self.store.client_data.put_receipt(
            room_id, "m.read", self.alice.user_id, event_id, {"ts": 5}
        )
        self.notifier.notify(RECEIPTS_STREAM, position, room_ids=[room_id])
        body = (await pending).json()
        self.assertEqual(
            body["rooms"]["join"][room_id]["ephemeral"]["events"][0]["type"], "m.receipt"
        )

    @deferred_test
    async def test_cancelled_sync_stops_waiting(self):
        """A long-poll whose client goes away (its Deferred cancelled) leaves no waiter behind."""
        first = await self.sync(self.alice)
        requester = Requester(self.alice.user_id, self.alice.device_id)
        pending = self.sync_service.sync(requester, since=first["next_batch"], timeout_ms=30000)
        await self.wait_for_waiter()
        pending.cancel()
        self.failureResultOf(pending, defer.CancelledError)
        self.assertEqual(self.notifier.waiter_count(), 0)

    @deferred_test
    async def test_initial_sync_does_not_wait(self):
        """An initial sync answers at once whatever the timeout."""
        body = await self.sync(self.alice, timeout=30000)
        self.assertEqual(body["rooms"]["join"], {})


class TokenTests(unittest.TestCase):
    """The token codec shared by /sync and /messages."""

    @given(st.integers(0, 2**62), st.integers(0, 2**62), st.integers(0, 2**62))
    def test_stream_token_round_trip(self, room_events, account_data, receipts):
        """A sync token reads back as written, and /messages reads it as a pure stream position."""
        token = StreamToken(room_events, account_data, receipts)
        self.assertEqual(StreamToken.parse(str(token)), token)
        self.assertEqual(parse_pagination_token(str(token)), RoomPosition(None, room_events))

    @given(st.integers(-(2**31), 2**62), st.integers(0, 2**62))
    def test_room_positions_round_trip(self, depth, stream):
        """Every RoomPosition, topological or not, survives format_room_position/parse_pagination_token."""
        for position in (RoomPosition(depth, stream), RoomPosition(None, stream)):
            self.assertEqual(parse_pagination_token(format_room_position(position)), position)
        self.assertEqual(str(TopologicalToken(depth, stream)), f"t{depth}_{stream}")

    def test_malformed_tokens(self):
        """Malformed tokens raise 400 M_INVALID_PARAM."""
        too_big = str(2**63)
        for token in ("", "x1", "s", "s1_", "s1_2", "sa_b_c", "t1", "t_1", "t1_2_3", " s1", None,
                      "s" + too_big, f"t{too_big}_1", f"t1_{too_big}", "s" + "9" * 40):
            with self.assertRaises(MatrixError) as caught:
                parse_pagination_token(token)
            self.assertEqual(
                (caught.exception.code, caught.exception.errcode), (400, "M_INVALID_PARAM")
            )
