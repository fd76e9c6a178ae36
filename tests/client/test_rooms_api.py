"""Room endpoints over HTTP: createRoom, membership, sending, state, redaction, members and joined rooms."""

from mxref.ratelimit import RateLimiter
from tests.client.rooms_support import RoomApiTestCase, path_part
from tests.client.support import deferred_test

CREATE = ("create_room.yaml", "/createRoom")


class CreateRoomTests(RoomApiTestCase):
    """``POST /createRoom``."""

    @deferred_test
    async def test_create_room_with_everything(self):
        """A room created with name, topic, alias, invite and initial state has all of them."""
        body = await self.ok(
            "POST",
            "/createRoom",
            {
                "name": "Lounge",
                "topic": "chat",
                "room_alias_name": "lounge",
                "invite": [self.bob.user_id],
                "visibility": "public",
                "preset": "public_chat",
                "room_version": "11",
                "is_direct": False,
                "creation_content": {"m.federate": True},
                "initial_state": [
                    {"type": "m.room.guest_access", "content": {"guest_access": "can_join"}}
                ],
                "power_level_content_override": {"events_default": 10},
            },
            self.alice,
            spec=CREATE,
        )
        room = path_part(body["room_id"])
        self.assertEqual(
            await self.ok("GET", f"/rooms/{room}/state/m.room.name", user=self.alice),
            {"name": "Lounge"},
        )
        guest = await self.ok("GET", f"/rooms/{room}/state/m.room.guest_access/", user=self.alice)
        self.assertEqual(guest, {"guest_access": "can_join"})
        levels = await self.ok("GET", f"/rooms/{room}/state/m.room.power_levels", user=self.alice)
        self.assertEqual(levels["events_default"], 10)
        members = await self.ok(
            "GET", f"/rooms/{room}/members", user=self.alice, query={"membership": "invite"}
        )
        self.assertEqual([e["state_key"] for e in members["chunk"]], [self.bob.user_id])
        alias = await self.ok("GET", f"/rooms/{room}/state/m.room.canonical_alias", user=self.alice)
        self.assertEqual(alias, {"alias": "#lounge:test.example"})

    @deferred_test
    async def test_create_room_with_empty_body(self):
        """An empty JSON object creates a private room the creator has joined."""
        room_id = await self.create_room(self.alice)
        rooms = await self.ok(
            "GET",
            "/joined_rooms",
            user=self.alice,
            spec=("list_joined_rooms.yaml", "/joined_rooms"),
        )
        self.assertEqual(rooms, {"joined_rooms": [room_id]})
        rules = await self.ok(
            "GET", f"/rooms/{path_part(room_id)}/state/m.room.join_rules/", user=self.alice
        )
        self.assertEqual(rules, {"join_rule": "invite"})

    @deferred_test
    async def test_r0_paths(self):
        """The legacy r0 paths serve the same endpoints."""
        response = await self.harness.request(
            "POST", "/_matrix/client/r0/createRoom", body={}, token=self.alice.access_token
        )
        self.assertEqual(response.code, 200)
        rooms = await self.harness.request(
            "GET", "/_matrix/client/r0/joined_rooms", token=self.alice.access_token
        )
        self.assertEqual(rooms.json(), {"joined_rooms": [response.json()["room_id"]]})

    @deferred_test
    async def test_wrong_field_types_are_refused(self):
        """Each createRoom field of the wrong type gives 400 M_BAD_JSON."""
        wrong = {
            "visibility": 1,
            "room_alias_name": [],
            "name": 5,
            "topic": {},
            "invite": "@bob:test.example",
            "room_version": 11,
            "creation_content": [],
            "initial_state": {},
            "preset": True,
            "is_direct": "yes",
            "power_level_content_override": "all",
        }
        for field, value in wrong.items():
            await self.fails(400, "M_BAD_JSON", "POST", "/createRoom", {field: value}, self.alice)
        await self.fails(400, "M_BAD_JSON", "POST", "/createRoom", {"invite": [3]}, self.alice)
        await self.fails(
            400, "M_BAD_JSON", "POST", "/createRoom", {"initial_state": [{"type": "x"}]}, self.alice
        )
        await self.fails(
            400, "M_BAD_JSON", "POST", "/createRoom", {"initial_state": ["x"]}, self.alice
        )
        await self.fails(
            400,
            "M_BAD_JSON",
            "POST",
            "/createRoom",
            {"initial_state": [{"type": "x", "state_key": 1, "content": {}}]},
            self.alice,
        )

    @deferred_test
    async def test_bad_values_are_refused(self):
        """Unknown visibility, preset, room version or user IDs give 400 with the right code."""
        await self.fails(
            400, "M_INVALID_PARAM", "POST", "/createRoom", {"visibility": "secret"}, self.alice
        )
        await self.fails(
            400, "M_INVALID_PARAM", "POST", "/createRoom", {"preset": "party"}, self.alice
        )
        await self.fails(
            400, "M_INVALID_PARAM", "POST", "/createRoom", {"invite": ["bob"]}, self.alice
        )
        await self.fails(
            400,
            "M_UNSUPPORTED_ROOM_VERSION",
            "POST",
            "/createRoom",
            {"room_version": "99"},
            self.alice,
        )
        await self.fails(
            400, "M_INVALID_PARAM", "POST", "/createRoom", {"room_alias_name": "a:b"}, self.alice
        )
        await self.fails(
            400,
            "M_INVALID_PARAM",
            "POST",
            "/createRoom",
            {"initial_state": [{"type": "m.room.create", "content": {}}]},
            self.alice,
        )
        await self.fails(
            400,
            "M_UNRECOGNIZED",
            "POST",
            "/createRoom",
            {"invite_3pid": [{"id_server": "i", "medium": "email", "address": "a@b"}]},
            self.alice,
        )

    @deferred_test
    async def test_alias_in_use(self):
        """A second room asking for a taken alias gets 400 M_ROOM_IN_USE."""
        await self.create_room(self.alice, room_alias_name="taken")
        await self.fails(
            400, "M_ROOM_IN_USE", "POST", "/createRoom", {"room_alias_name": "taken"}, self.bob
        )

    @deferred_test
    async def test_not_json_and_no_token(self):
        """A body that is not JSON gives M_NOT_JSON; no or a bad token gives 401."""
        await self.fails(400, "M_NOT_JSON", "POST", "/createRoom", b"{nope", self.alice)
        await self.fails(400, "M_BAD_JSON", "POST", "/createRoom", [], self.alice)
        await self.fails(401, "M_MISSING_TOKEN", "POST", "/createRoom", {})
        await self.fails(401, "M_UNKNOWN_TOKEN", "POST", "/createRoom", {}, token="nonsense")


class RateLimitedCreateRoomTests(RoomApiTestCase):
    """``rc_message`` applies to creating rooms and sending events."""

    def make_message_limiter(self):
        return RateLimiter(self.harness.clock, 0.1, 2)

    @deferred_test
    async def test_limit_exceeded(self):
        """The third action in a burst of two gets 429 M_LIMIT_EXCEEDED; later it works again."""
        room_id = await self.create_room(self.alice)
        await self.send_text(self.alice, room_id, "one")
        body = await self.fails(
            429,
            "M_LIMIT_EXCEEDED",
            "PUT",
            f"/rooms/{path_part(room_id)}/send/m.room.message/t9",
            {"msgtype": "m.text", "body": "two"},
            self.alice,
        )
        self.assertGreater(body["retry_after_ms"], 0)
        self.harness.clock.advance(30)
        await self.send_text(self.alice, room_id, "three")

    @deferred_test
    async def test_retried_transaction_is_not_limited(self):
        """Retrying an already sent transaction ID while the limit is reached gives the same
        event rather than 429."""
        room_id = await self.create_room(self.alice)
        first = await self.send_text(self.alice, room_id, "one", txn_id="again")
        await self.fails(
            429,
            "M_LIMIT_EXCEEDED",
            "PUT",
            f"/rooms/{path_part(room_id)}/send/m.room.message/t9",
            {"msgtype": "m.text", "body": "two"},
            self.alice,
        )
        self.assertEqual(await self.send_text(self.alice, room_id, "one", txn_id="again"), first)


class MembershipTests(RoomApiTestCase):
    """Join, invite, leave, forget, kick, ban and unban."""

    @deferred_test
    async def test_invite_join_leave(self):
        """An invited user joins by ID, is listed as joined, then leaves."""
        room_id = await self.create_room(self.alice)
        room = path_part(room_id)
        await self.fails(403, "M_FORBIDDEN", "POST", f"/rooms/{room}/join", {}, self.bob)
        await self.ok(
            "POST",
            f"/rooms/{room}/invite",
            {"user_id": self.bob.user_id, "reason": "hi"},
            self.alice,
            spec=("inviting.yaml", "/rooms/{roomId}/invite "),
        )
        joined = await self.ok(
            "POST",
            f"/rooms/{room}/join",
            {"reason": "thanks"},
            self.bob,
            spec=("joining.yaml", "/rooms/{roomId}/join"),
        )
        self.assertEqual(joined, {"room_id": room_id})
        members = await self.ok(
            "GET",
            f"/rooms/{room}/joined_members",
            user=self.bob,
            spec=("rooms.yaml", "/rooms/{roomId}/joined_members"),
        )
        self.assertEqual(set(members["joined"]), {self.alice.user_id, self.bob.user_id})
        await self.ok(
            "POST",
            f"/rooms/{room}/leave",
            {},
            self.bob,
            spec=("leaving.yaml", "/rooms/{roomId}/leave"),
        )
        self.assertEqual(await self.ok("GET", "/joined_rooms", user=self.bob), {"joined_rooms": []})

    @deferred_test
    async def test_join_by_alias(self):
        """A public room is joined through its alias with /join/{roomIdOrAlias}."""
        room_id = await self.create_room(self.alice, preset="public_chat", room_alias_name="pub")
        joined = await self.ok(
            "POST",
            f"/join/{path_part('#pub:test.example')}",
            None,
            self.bob,
            query={"via": "test.example"},
            spec=("joining.yaml", "/join/{roomIdOrAlias}"),
        )
        self.assertEqual(joined, {"room_id": room_id})
        await self.fails(
            404, "M_NOT_FOUND", "POST", f"/join/{path_part('#nope:test.example')}", {}, self.bob
        )
        await self.fails(400, "M_INVALID_PARAM", "POST", "/join/lounge", {}, self.bob)
        await self.fails(
            400, "M_BAD_JSON", "POST", f"/join/{path_part(room_id)}", {"reason": 4}, self.bob
        )

    @deferred_test
    async def test_invite_bad_input(self):
        """Invites without a user ID, with a bad one, in 3PID form, or by a non-member are refused."""
        room = path_part(await self.create_room(self.alice))
        await self.fails(400, "M_MISSING_PARAM", "POST", f"/rooms/{room}/invite", {}, self.alice)
        await self.fails(
            400, "M_BAD_JSON", "POST", f"/rooms/{room}/invite", {"user_id": 7}, self.alice
        )
        await self.fails(
            400, "M_INVALID_PARAM", "POST", f"/rooms/{room}/invite", {"user_id": "bob"}, self.alice
        )
        await self.fails(
            400,
            "M_UNRECOGNIZED",
            "POST",
            f"/rooms/{room}/invite",
            {"id_server": "id.example", "medium": "email", "address": "b@example.org"},
            self.alice,
        )
        await self.fails(
            403,
            "M_FORBIDDEN",
            "POST",
            f"/rooms/{room}/invite",
            {"user_id": self.carol.user_id},
            self.bob,
        )
        await self.fails(
            403,
            "M_FORBIDDEN",
            "POST",
            f"/rooms/{path_part('!nope:test.example')}/invite",
            {"user_id": self.carol.user_id},
            self.alice,
        )
        await self.fails(
            400,
            "M_INVALID_PARAM",
            "POST",
            "/rooms/not-a-room/invite",
            {"user_id": self.carol.user_id},
            self.alice,
        )

    @deferred_test
    async def test_forget(self):
        """A joined user cannot forget; after leaving they can, and the history is then closed."""
        room_id = await self.create_room(self.alice, preset="public_chat")
        room = path_part(room_id)
        await self.join(self.bob, room_id)
        await self.send_text(self.alice, room_id, "before leaving")
        await self.fails(400, "M_UNKNOWN", "POST", f"/rooms/{room}/forget", {}, self.bob)
        await self.ok("POST", f"/rooms/{room}/leave", None, self.bob)
        history = await self.ok("GET", f"/rooms/{room}/messages", user=self.bob, query={"dir": "b"})
        self.assertIn("before leaving", [e["content"].get("body") for e in history["chunk"]])
        await self.ok(
            "POST",
            f"/rooms/{room}/forget",
            None,
            self.bob,
            spec=("leaving.yaml", "/rooms/{roomId}/forget"),
        )
        await self.fails(
            403, "M_FORBIDDEN", "GET", f"/rooms/{room}/messages", user=self.bob, query={"dir": "b"}
        )
        await self.fails(403, "M_FORBIDDEN", "GET", f"/rooms/{room}/state", user=self.bob)
        await self.fails(404, "M_NOT_FOUND", "POST", f"/rooms/{room}/forget", {}, self.carol)
        await self.join(self.bob, room_id)
        await self.ok("GET", f"/rooms/{room}/state", user=self.bob)

    @deferred_test
    async def test_kick_ban_unban(self):
        """The creator kicks, bans and unbans; a plain member may not; the banned user cannot join."""
        room_id = await self.create_room(self.alice, preset="public_chat")
        room = path_part(room_id)
        await self.join(self.bob, room_id)
        await self.join(self.carol, room_id)
        await self.fails(
            403,
            "M_FORBIDDEN",
            "POST",
            f"/rooms/{room}/kick",
            {"user_id": self.carol.user_id},
            self.bob,
        )
        await self.ok(
            "POST",
            f"/rooms/{room}/kick",
            {"user_id": self.carol.user_id, "reason": "noise"},
            self.alice,
            spec=("kicking.yaml", "/rooms/{roomId}/kick"),
        )
        await self.fails(
            403,
            "M_FORBIDDEN",
            "POST",
            f"/rooms/{room}/kick",
            {"user_id": self.carol.user_id},
            self.alice,
        )
        await self.ok(
            "POST",
            f"/rooms/{room}/ban",
            {"user_id": self.bob.user_id},
            self.alice,
            spec=("banning.yaml", "/rooms/{roomId}/ban"),
        )
        await self.fails(403, "M_FORBIDDEN", "POST", f"/rooms/{room}/join", {}, self.bob)
        await self.fails(
            403,
            "M_FORBIDDEN",
            "POST",
            f"/rooms/{room}/unban",
            {"user_id": self.carol.user_id},
            self.alice,
        )
        await self.ok(
            "POST",
            f"/rooms/{room}/unban",
            {"user_id": self.bob.user_id},
            self.alice,
            spec=("banning.yaml", "/rooms/{roomId}/unban"),
        )
        await self.join(self.bob, room_id)
        member = await self.ok(
            "GET",
            f"/rooms/{room}/state/m.room.member/{path_part(self.carol.user_id)}",
            user=self.alice,
        )
        self.assertEqual(member, {"membership": "leave", "reason": "noise"})
        await self.fails(400, "M_MISSING_PARAM", "POST", f"/rooms/{room}/ban", {}, self.alice)
        await self.fails(
            400,
            "M_BAD_JSON",
            "POST",
            f"/rooms/{room}/ban",
            {"user_id": self.bob.user_id, "reason": 1},
            self.alice,
        )


class SendAndStateTests(RoomApiTestCase):
    """Sending messages and state, reading state, redactions and single events."""

    @deferred_test
    async def test_send_is_idempotent_per_device(self):
        """Retrying a send with the same transaction ID gives the same event; another ID a new one."""
        room = path_part(await self.create_room(self.alice))
        content = {"msgtype": "m.text", "body": "hello"}
        first = await self.ok(
            "PUT",
            f"/rooms/{room}/send/m.room.message/abc",
            content,
            self.alice,
            spec=("room_send.yaml", "/rooms/{roomId}/send/{eventType}/{txnId}"),
        )
        again = await self.ok("PUT", f"/rooms/{room}/send/m.room.message/abc", content, self.alice)
        other = await self.ok("PUT", f"/rooms/{room}/send/m.room.message/abd", content, self.alice)
        self.assertEqual(first, again)
        self.assertNotEqual(first, other)
        event = await self.ok(
            "GET",
            f"/rooms/{room}/event/{path_part(first['event_id'])}",
            user=self.alice,
            spec=("rooms.yaml", "/rooms/{roomId}/event/{eventId}"),
        )
        self.assertEqual(
            (event["content"], event["sender"], event["type"]),
            (content, self.alice.user_id, "m.room.message"),
        )

    @deferred_test
    async def test_send_refused(self):
        """Non-members, non-object bodies and unknown rooms are refused."""
        room = path_part(await self.create_room(self.alice))
        await self.fails(
            403,
            "M_FORBIDDEN",
            "PUT",
            f"/rooms/{room}/send/m.room.message/1",
            {"body": "x"},
            self.bob,
        )
        await self.fails(
            400, "M_BAD_JSON", "PUT", f"/rooms/{room}/send/m.room.message/2", ["x"], self.alice
        )
        await self.fails(
            400, "M_NOT_JSON", "PUT", f"/rooms/{room}/send/m.room.message/3", b"x", self.alice
        )
        await self.fails(
            404,
            "M_NOT_FOUND",
            "PUT",
            f"/rooms/{path_part('!no:test.example')}/send/m.room.message/4",
            {"body": "x"},
            self.alice,
        )
        await self.fails(
            403, "M_FORBIDDEN", "PUT", f"/rooms/{room}/send/m.room.create/5", {}, self.alice
        )
        await self.fails(
            403, "M_FORBIDDEN", "PUT", f"/rooms/{room}/state/m.room.create/", {}, self.alice
        )

    @deferred_test
    async def test_state_put_and_get(self):
        """State set with PUT reads back as content or as an event; absent state is 404."""
        room = path_part(await self.create_room(self.alice))
        put = await self.ok(
            "PUT",
            f"/rooms/{room}/state/m.room.topic",
            {"topic": "cats"},
            self.alice,
            spec=("room_state.yaml", "/rooms/{roomId}/state/{eventType}/{stateKey}"),
        )
        same = await self.ok(
            "PUT", f"/rooms/{room}/state/m.room.topic/", {"topic": "cats"}, self.alice
        )
        self.assertEqual(put, same)
        custom = await self.ok(
            "PUT", f"/rooms/{room}/state/org.example.thing/{path_part('a/b')}", {"n": 1}, self.alice
        )
        event = await self.ok(
            "GET",
            f"/rooms/{room}/state/org.example.thing/{path_part('a/b')}",
            user=self.alice,
            query={"format": "event"},
        )
        self.assertEqual(
            (event["event_id"], event["state_key"], event["content"]),
            (custom["event_id"], "a/b", {"n": 1}),
        )
        content = await self.ok(
            "GET",
            f"/rooms/{room}/state/m.room.topic/",
            user=self.alice,
            spec=("rooms.yaml", "/rooms/{roomId}/state/{eventType}/{stateKey}"),
        )
        self.assertEqual(content, {"topic": "cats"})
        state = await self.ok(
            "GET",
            f"/rooms/{room}/state",
            user=self.alice,
            spec=("rooms.yaml", "/rooms/{roomId}/state"),
        )
        self.assertIn(("m.room.topic", ""), {(e["type"], e["state_key"]) for e in state})
        await self.fails(
            404, "M_NOT_FOUND", "GET", f"/rooms/{room}/state/m.room.avatar/", user=self.alice
        )
        await self.fails(
            400,
            "M_INVALID_PARAM",
            "GET",
            f"/rooms/{room}/state/m.room.topic/",
            user=self.alice,
            query={"format": "xml"},
        )

    @deferred_test
    async def test_state_refused(self):
        """Non-members cannot read or set state; a plain member lacks power for the name."""
        room_id = await self.create_room(self.alice, preset="public_chat")
        room = path_part(room_id)
        await self.fails(403, "M_FORBIDDEN", "GET", f"/rooms/{room}/state", user=self.bob)
        await self.fails(
            403, "M_FORBIDDEN", "GET", f"/rooms/{room}/state/m.room.create/", user=self.bob
        )
        await self.fails(
            403,
            "M_FORBIDDEN",
            "GET",
            f"/rooms/{path_part('!no:test.example')}/state",
            user=self.bob,
        )
        await self.join(self.bob, room_id)
        await self.fails(
            403, "M_FORBIDDEN", "PUT", f"/rooms/{room}/state/m.room.name/", {"name": "x"}, self.bob
        )
        await self.fails(
            400, "M_BAD_JSON", "PUT", f"/rooms/{room}/state/m.room.name/", "x", self.alice
        )

    @deferred_test
    async def test_left_user_sees_state_at_leave(self):
        """A user who left reads the state as it was when they left."""
        room_id = await self.create_room(self.alice, preset="public_chat", name="Old")
        room = path_part(room_id)
        await self.join(self.bob, room_id)
        await self.ok("POST", f"/rooms/{room}/leave", {}, self.bob)
        await self.ok("PUT", f"/rooms/{room}/state/m.room.name", {"name": "New"}, self.alice)
        self.assertEqual(
            await self.ok("GET", f"/rooms/{room}/state/m.room.name", user=self.bob), {"name": "Old"}
        )
        self.assertEqual(
            await self.ok("GET", f"/rooms/{room}/state/m.room.name", user=self.alice),
            {"name": "New"},
        )

    @deferred_test
    async def test_redaction(self):
        """A redacted message is served pruned with redacted_because; others may not redact it."""
        room_id = await self.create_room(self.alice, preset="public_chat")
        room = path_part(room_id)
        await self.join(self.bob, room_id)
        event_id = await self.send_text(self.alice, room_id, "oops")
        await self.fails(
            403,
            "M_FORBIDDEN",
            "PUT",
            f"/rooms/{room}/redact/{path_part(event_id)}/r1",
            {},
            self.bob,
        )
        redaction = await self.ok(
            "PUT",
            f"/rooms/{room}/redact/{path_part(event_id)}/r2",
            {"reason": "typo"},
            self.alice,
            spec=("redaction.yaml", "/rooms/{roomId}/redact/{eventId}/{txnId}"),
        )
        again = await self.ok(
            "PUT", f"/rooms/{room}/redact/{path_part(event_id)}/r2", {"reason": "typo"}, self.alice
        )
        self.assertEqual(redaction, again)
        event = await self.ok("GET", f"/rooms/{room}/event/{path_part(event_id)}", user=self.bob)
        self.assertEqual(event["content"], {})
        self.assertEqual(event["unsigned"]["redacted_because"]["event_id"], redaction["event_id"])
        await self.fails(
            404,
            "M_NOT_FOUND",
            "PUT",
            f"/rooms/{room}/redact/{path_part('$nope')}/r3",
            {},
            self.alice,
        )
        await self.fails(
            400,
            "M_BAD_JSON",
            "PUT",
            f"/rooms/{room}/redact/{path_part(event_id)}/r4",
            {"reason": 1},
            self.alice,
        )

    @deferred_test
    async def test_event_not_found_or_invisible(self):
        """Unknown events, events of another room and events a non-member cannot see are 404."""
        room_id = await self.create_room(self.alice)
        other = await self.create_room(self.alice)
        event_id = await self.send_text(self.alice, room_id, "private")
        await self.fails(
            404,
            "M_NOT_FOUND",
            "GET",
            f"/rooms/{path_part(room_id)}/event/{path_part('$x')}",
            user=self.alice,
        )
        await self.fails(
            404,
            "M_NOT_FOUND",
            "GET",
            f"/rooms/{path_part(other)}/event/{path_part(event_id)}",
            user=self.alice,
        )
        await self.fails(
            404,
            "M_NOT_FOUND",
            "GET",
            f"/rooms/{path_part(room_id)}/event/{path_part(event_id)}",
            user=self.bob,
        )


class MembersTests(RoomApiTestCase):
    """``GET /members`` and ``GET /joined_members``."""

    @deferred_test
    async def test_members_filters(self):
        """membership and not_membership filter the list, and together mean 'either'."""
        room_id = await self.create_room(self.alice, preset="public_chat")
        room = path_part(room_id)
        await self.join(self.bob, room_id)
        await self.invite(self.alice, room_id, self.carol)

        async def members(**query):
            body = await self.ok(
                "GET",
                f"/rooms/{room}/members",
                user=self.alice,
                query=query,
                spec=("rooms.yaml", "/rooms/{roomId}/members"),
            )
            return sorted((e["state_key"], e["content"]["membership"]) for e in body["chunk"])

        everyone = await members()
        self.assertEqual([m for _, m in everyone], ["join", "join", "invite"])
        self.assertEqual(await members(membership="invite"), [(self.carol.user_id, "invite")])
        self.assertEqual(len(await members(not_membership="invite")), 2)
        self.assertEqual(len(await members(membership="invite", not_membership="join")), 1)
        await self.fails(
            400,
            "M_INVALID_PARAM",
            "GET",
            f"/rooms/{room}/members",
            user=self.alice,
            query={"membership": "party"},
        )
        await self.fails(403, "M_FORBIDDEN", "GET", f"/rooms/{room}/members", user=self.carol)
        await self.fails(
            403, "M_FORBIDDEN", "GET", f"/rooms/{room}/joined_members", user=self.carol
        )

    @deferred_test
    async def test_members_at_token(self):
        """With ``at`` the members are as they were at that point of the timeline."""
        room_id = await self.create_room(self.alice, preset="public_chat")
        room = path_part(room_id)
        page = await self.ok(
            "GET", f"/rooms/{room}/messages", user=self.alice, query={"dir": "b", "limit": 1}
        )
        await self.join(self.bob, room_id)
        then = await self.ok(
            "GET", f"/rooms/{room}/members", user=self.alice, query={"at": page["start"]}
        )
        self.assertEqual([e["state_key"] for e in then["chunk"]], [self.alice.user_id])
        now = await self.ok("GET", f"/rooms/{room}/members", user=self.alice)
        self.assertEqual(len(now["chunk"]), 2)
        await self.fails(
            400,
            "M_INVALID_PARAM",
            "GET",
            f"/rooms/{room}/members",
            user=self.alice,
            query={"at": "bogus"},
        )

    @deferred_test
    async def test_joined_members_profiles(self):
        """joined_members reports display names and avatars from the member events."""
        await self.harness.store.accounts.set_displayname(self.bob.user_id, "Bobby")
        await self.harness.store.accounts.set_avatar_url(self.bob.user_id, "mxc://test.example/bob")
        room_id = await self.create_room(self.alice, preset="public_chat")
        await self.join(self.bob, room_id)
        body = await self.ok("GET", f"/rooms/{path_part(room_id)}/joined_members", user=self.alice)
        self.assertEqual(
            body["joined"][self.bob.user_id],
            {"display_name": "Bobby", "avatar_url": "mxc://test.example/bob"},
        )
        self.assertEqual(body["joined"][self.alice.user_id], {"display_name": "alice"})
