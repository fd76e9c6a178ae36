"""Presence over HTTP: ``PUT``/``GET /presence/{userId}/status`` and ``/sync``'s ``presence``."""

import json
from urllib.parse import quote

from twisted.internet import defer
from twisted.trial import unittest

from mxref.client.presence.resource import PresenceResource
from mxref.client.presence.service import PresenceService
from mxref.client.presence.tracker import (
    IDLE_AFTER_SECONDS,
    PRESENCE_STREAM,
    SYNC_GAP_SECONDS,
    PresenceTracker,
)
from mxref.client.tokens import StreamToken
from mxref.client.visibility import EventVisibility
from tests.client.support import deferred_test
from tests.client.test_sync import SyncFixture
from tests.schema import validate_request, validate_response, validate_schema

STATUS = ("client-server/presence.yaml", "/presence/{userId}/status")
V3 = "/_matrix/client/v3"


class PresenceFixture(SyncFixture):
    """The sync fixture with a running presence tracker, its service and resource."""

    @deferred_test
    async def setUp(self):
        await SyncFixture.setUp(self)
        store, clock = self.store, self.harness.clock
        self.notifications = []
        self.notifier.subscribe(self.notifications.append)
        self.tracker = PresenceTracker(clock, self.notifier, store.rooms)
        self.tracker.startService()
        self.addCleanup(self.tracker.stopService)
        self.presence = PresenceService(self.tracker, store.rooms)
        # The fixture's SyncService has no presence; swap in one that has (same collaborators).
        self.sync_service.__init__(
            store.events,
            store.rooms,
            store.client_data,
            EventVisibility(store.events, store.state, store.rooms),
            self.creator,
            self.sync_service._filters,
            self.notifier,
            clock,
            typing=self.typing,
            presence=self.presence,
        )
        self.harness.add_routes(PresenceResource(self.presence, self.harness.authenticator))

    async def put_status(self, user, body, target=None, expect=200):
        target = target or user.user_id
        response = await self.harness.request(
            "PUT", f"{V3}/presence/{quote(target, safe='')}/status", body=body, token=user.access_token
        )
        self.assertEqual(response.code, expect, response.body)
        if expect == 200:
            validate_request(STATUS[0], STATUS[1], "put", body)
            validate_response(STATUS[0], STATUS[1], "put", 200, response.json())
        return response.json()

    async def get_status(self, user, target, expect=200):
        response = await self.harness.request(
            "GET", f"{V3}/presence/{quote(target, safe='')}/status", token=user.access_token
        )
        self.assertEqual(response.code, expect, response.body)
        if expect in (200, 403, 404):
            validate_response(STATUS[0], STATUS[1], "get", expect, response.json())
        return response.json()

    def presence_of(self, sync_body):
        """``{sender: content}`` of a sync body's presence events, each checked against the schema."""
        found = {}
        for event in sync_body["presence"]["events"]:
            validate_schema("event-schemas/schema/m.presence.yaml", event)
            found[event["sender"]] = event["content"]
        return found

    async def shared_room(self):
        room_id = await self.room(self.alice, preset="public_chat")
        await self.membership.join(self.bob.user_id, room_id)
        return room_id


class PresenceStatusTests(PresenceFixture, unittest.TestCase):
    """``PUT`` and ``GET /presence/{userId}/status``."""

    @deferred_test
    async def test_set_and_get_own(self):
        """A user's own state and message come back, with last_active_ago and currently_active."""
        await self.put_status(self.alice, {"presence": "online", "status_msg": "Busy coding"})
        self.harness.clock.advance(2)
        body = await self.get_status(self.alice, self.alice.user_id)
        self.assertEqual(
            body,
            {"presence": "online", "status_msg": "Busy coding", "last_active_ago": 2000, "currently_active": True},
        )

    @deferred_test
    async def test_other_user_sharing_a_room(self):
        """A user who shares a room sees the state; one who shares none gets 403 M_FORBIDDEN."""
        await self.shared_room()
        await self.put_status(self.bob, {"presence": "unavailable"})
        body = await self.get_status(self.alice, self.bob.user_id)
        self.assertEqual(body["presence"], "unavailable")
        self.assertFalse(body["currently_active"])
        refused = await self.get_status(self.carol, self.bob.user_id, expect=403)
        self.assertEqual(refused["errcode"], "M_FORBIDDEN")

    @deferred_test
    async def test_unknown_state_is_offline(self):
        """A room-mate who never set a state nor synced is offline."""
        await self.shared_room()
        self.assertEqual(await self.get_status(self.alice, self.bob.user_id), {"presence": "offline"})

    @deferred_test
    async def test_cannot_set_another_users_presence(self):
        """Setting someone else's presence is 403 M_FORBIDDEN and changes nothing."""
        body = await self.put_status(self.alice, {"presence": "online"}, target=self.bob.user_id, expect=403)
        self.assertEqual(body["errcode"], "M_FORBIDDEN")
        self.assertIsNone(self.tracker.get(self.bob.user_id))

    @deferred_test
    async def test_bad_bodies(self):
        """An unknown state, a missing state or a non-string message is a 400."""
        for body, errcode in (
            ({"presence": "busy"}, "M_INVALID_PARAM"),
            ({"status_msg": "hi"}, "M_MISSING_PARAM"),
            ({"presence": "online", "status_msg": 5}, "M_BAD_JSON"),
        ):
            answer = await self.put_status(self.alice, body, expect=400)
            self.assertEqual(answer["errcode"], errcode, body)
        self.assertIsNone(self.tracker.get(self.alice.user_id))

    @deferred_test
    async def test_change_is_announced_to_the_users_rooms(self):
        """A change notifies the presence stream with the user and the rooms they are joined to."""
        room_id = await self.shared_room()
        await self.put_status(self.bob, {"presence": "online"})
        [notification] = [n for n in self.notifications if n.stream_name == PRESENCE_STREAM]
        self.assertEqual(
            (notification.position, set(notification.room_ids), set(notification.user_ids)),
            (self.tracker.position, {room_id}, {self.bob.user_id}),
        )


class PresenceSyncTests(PresenceFixture, unittest.TestCase):
    """``/sync``: ``set_presence`` and the ``presence`` section."""

    @deferred_test
    async def test_sync_marks_user_online_and_reports_room_mates(self):
        """Syncing makes a user online; room-mates see it, a stranger does not."""
        await self.shared_room()
        body = await self.sync(self.bob)
        self.assertEqual(self.presence_of(body)[self.bob.user_id]["presence"], "online")
        alice_view = self.presence_of(await self.sync(self.alice))
        self.assertEqual(alice_view[self.bob.user_id]["presence"], "online")
        self.assertEqual(alice_view[self.bob.user_id]["currently_active"], True)
        carol_view = self.presence_of(await self.sync(self.carol))
        self.assertEqual(set(carol_view), {self.carol.user_id})

    @deferred_test
    async def test_set_presence_offline_and_unavailable(self):
        """set_presence=offline leaves the user offline; unavailable marks them idle."""
        await self.sync(self.alice, set_presence="offline")
        self.assertIsNone(self.tracker.get(self.alice.user_id))
        body = await self.sync(self.alice, set_presence="unavailable")
        self.assertEqual(self.presence_of(body)[self.alice.user_id]["presence"], "unavailable")

    @deferred_test
    async def test_incremental_sync_sends_only_changes(self):
        """An incremental sync carries only the presence changes since its token."""
        await self.shared_room()
        await self.put_status(self.bob, {"presence": "online", "status_msg": "here"})
        first = await self.sync(self.alice)
        self.assertIn(self.bob.user_id, self.presence_of(first))
        quiet = await self.sync(self.alice, since=first["next_batch"])
        self.assertEqual(self.presence_of(quiet), {})
        await self.put_status(self.bob, {"presence": "unavailable", "status_msg": "lunch"})
        changed = await self.sync(self.alice, since=quiet["next_batch"])
        self.assertEqual(
            self.presence_of(changed)[self.bob.user_id],
            {"presence": "unavailable", "status_msg": "lunch", "last_active_ago": 0, "currently_active": False},
        )
        self.assertEqual(StreamToken.parse(changed["next_batch"]).presence, self.tracker.position)

    @deferred_test
    async def test_explicit_state_wins_over_sync(self):
        """After PUT unavailable, a plain sync does not bring the user back online."""
        await self.put_status(self.alice, {"presence": "unavailable"})
        await self.sync(self.alice)
        self.assertEqual(self.tracker.get(self.alice.user_id).presence, "unavailable")

    @deferred_test
    async def test_idle_then_offline(self):
        """An online user goes unavailable after 5 idle minutes and offline when syncs stop."""
        await self.sync(self.alice, timeout=0)
        clock = self.harness.clock
        for _ in range(int(IDLE_AFTER_SECONDS // 20)):
            clock.advance(20)
            await self.sync(self.alice, timeout=0)
        self.assertEqual(self.tracker.get(self.alice.user_id).presence, "unavailable")
        clock.advance(SYNC_GAP_SECONDS + 1)
        self.assertEqual(self.tracker.get(self.alice.user_id).presence, "offline")
        await self.sync(self.alice)
        self.assertEqual(self.tracker.get(self.alice.user_id).presence, "online")

    @deferred_test
    async def test_long_poll_wakes_on_presence(self):
        """A waiting incremental sync returns as soon as a room-mate's presence changes."""
        await self.shared_room()
        first = await self.sync(self.alice)
        path = f"{V3}/sync?since={first['next_batch']}&timeout=10000"
        pending = defer.ensureDeferred(self.harness.request("GET", path, token=self.alice.access_token))
        await self.put_status(self.bob, {"presence": "online", "status_msg": "back"})
        response = await pending
        self.assertEqual(response.code, 200, response.body)
        validate_response("client-server/sync.yaml", "/sync", "get", 200, response.json())
        self.assertEqual(self.presence_of(response.json())[self.bob.user_id]["status_msg"], "back")

    @deferred_test
    async def test_old_tokens_still_parse(self):
        """A token written before presence had a position (four parts) still works."""
        first = await self.sync(self.alice)
        token = StreamToken.parse(first["next_batch"])
        old = f"s{token.room_events}_{token.account_data}_{token.receipts}_{token.typing}"
        self.assertEqual(StreamToken.parse(old).presence, 0)
        body = await self.sync(self.alice, since=old)
        self.assertIn(self.alice.user_id, self.presence_of(body))

    @deferred_test
    async def test_presence_filter(self):
        """A filter whose presence part excludes m.presence (or one sender) leaves those events out."""
        await self.shared_room()
        await self.put_status(self.bob, {"presence": "online"})
        excluded = await self.sync(self.alice, filter=json.dumps({"presence": {"not_types": ["m.presence"]}}))
        self.assertEqual(self.presence_of(excluded), {})
        only_bob = await self.sync(self.alice, filter=json.dumps({"presence": {"senders": [self.bob.user_id]}}))
        self.assertEqual(set(self.presence_of(only_bob)), {self.bob.user_id})
