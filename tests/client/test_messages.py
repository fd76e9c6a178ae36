"""``GET /rooms/{roomId}/messages`` and ``GET /rooms/{roomId}/context/{eventId}`` over HTTP."""

from tests.client.rooms_support import RoomApiTestCase, filter_query, path_part
from tests.client.support import deferred_test

MESSAGES = ("message_pagination.yaml", "/rooms/{roomId}/messages")
CONTEXT = ("event_context.yaml", "/rooms/{roomId}/context/{eventId}")


def bodies(chunk):
    return [event["content"].get("body") for event in chunk if event["type"] == "m.room.message"]


class MessagesTests(RoomApiTestCase):
    """Paging a room's timeline."""

    async def room_with_messages(self, count):
        room_id = await self.create_room(self.alice, preset="public_chat")
        await self.join(self.bob, room_id)
        for n in range(count):
            await self.send_text(self.alice if n % 2 == 0 else self.bob, room_id, f"m{n}")
        return room_id

    @deferred_test
    async def test_page_back_then_forward(self):
        """30 messages paged back 10 at a time come newest first; paging forward again gives them oldest first."""
        room_id = await self.room_with_messages(30)
        room = path_part(room_id)
        seen, token, pages = [], None, []
        for _ in range(3):
            query = {"dir": "b", "limit": 10}
            if token is not None:
                query["from"] = token
            page = await self.ok(
                "GET", f"/rooms/{room}/messages", user=self.alice, query=query, spec=MESSAGES
            )
            if token is not None:
                self.assertEqual(page["start"], token)
            self.assertEqual(len(page["chunk"]), 10)
            seen += bodies(page["chunk"])
            pages.append(page)
            token = page["end"]
        self.assertEqual(seen, [f"m{n}" for n in range(29, -1, -1)])
        rest = await self.ok(
            "GET",
            f"/rooms/{room}/messages",
            user=self.alice,
            query={"dir": "b", "from": token, "limit": 100},
            spec=MESSAGES,
        )
        self.assertEqual(bodies(rest["chunk"]), [])
        self.assertEqual(rest["chunk"][-1]["type"], "m.room.create")
        self.assertNotIn("end", rest)

        forward, token = [], pages[-1]["end"]
        while True:
            page = await self.ok(
                "GET",
                f"/rooms/{room}/messages",
                user=self.alice,
                query={"dir": "f", "from": token, "limit": 10},
                spec=MESSAGES,
            )
            forward += bodies(page["chunk"])
            if "end" not in page:
                break
            token = page["end"]
        self.assertEqual(forward, [f"m{n}" for n in range(30)])

    @deferred_test
    async def test_without_from(self):
        """Without ``from``, dir=f starts at the room's creation and dir=b at its latest event."""
        room_id = await self.room_with_messages(3)
        room = path_part(room_id)
        first = await self.ok(
            "GET", f"/rooms/{room}/messages", user=self.alice, query={"dir": "f", "limit": 1}
        )
        self.assertEqual(first["chunk"][0]["type"], "m.room.create")
        last = await self.ok(
            "GET", f"/rooms/{room}/messages", user=self.alice, query={"dir": "b", "limit": 1}
        )
        self.assertEqual(bodies(last["chunk"]), ["m2"])

    @deferred_test
    async def test_to_token(self):
        """Paging forward with ``to`` stops at that point."""
        room_id = await self.room_with_messages(6)
        room = path_part(room_id)
        newest = await self.ok(
            "GET", f"/rooms/{room}/messages", user=self.alice, query={"dir": "b", "limit": 3}
        )
        older = await self.ok(
            "GET",
            f"/rooms/{room}/messages",
            user=self.alice,
            query={"dir": "b", "limit": 2, "from": newest["end"]},
        )
        between = await self.ok(
            "GET",
            f"/rooms/{room}/messages",
            user=self.alice,
            query={"dir": "f", "from": older["end"], "to": newest["end"], "limit": 50},
        )
        self.assertEqual(bodies(between["chunk"]), ["m1", "m2"])
        self.assertNotIn("end", between)

    @deferred_test
    async def test_sync_style_token(self):
        """A stream token (``s<N>``, as /sync hands out) is accepted as ``from``."""
        room_id = await self.room_with_messages(4)
        page = await self.ok(
            "GET",
            f"/rooms/{path_part(room_id)}/messages",
            user=self.alice,
            query={"dir": "b", "from": "s1000000", "limit": 2},
        )
        self.assertEqual(bodies(page["chunk"]), ["m3", "m2"])

    @deferred_test
    async def test_filter(self):
        """types, not_types, senders and not_senders filter the chunk; the limit still counts matches."""
        room_id = await self.room_with_messages(10)
        room = path_part(room_id)

        async def page(**fields):
            body = await self.ok(
                "GET",
                f"/rooms/{room}/messages",
                user=self.alice,
                query={"dir": "b", "limit": 3, "filter": filter_query(**fields)},
                spec=MESSAGES,
            )
            return body["chunk"]

        self.assertEqual(bodies(await page(senders=[self.bob.user_id])), ["m9", "m7", "m5"])
        self.assertEqual(bodies(await page(not_senders=[self.bob.user_id])), ["m8", "m6", "m4"])
        members = await page(types=["m.room.mem*"])
        self.assertEqual({e["type"] for e in members}, {"m.room.member"})
        self.assertEqual(len(members), 2)
        self.assertNotIn(
            "m.room.message", {e["type"] for e in await page(not_types=["m.room.message"])}
        )
        self.assertEqual(len(await page(limit=1)), 1)

    @deferred_test
    async def test_lazy_loaded_members(self):
        """With lazy_load_members, ``state`` holds the member events of the chunk's senders."""
        room_id = await self.room_with_messages(4)
        body = await self.ok(
            "GET",
            f"/rooms/{path_part(room_id)}/messages",
            user=self.alice,
            spec=MESSAGES,
            query={"dir": "b", "limit": 1, "filter": filter_query(lazy_load_members=True)},
        )
        self.assertEqual(
            [(e["type"], e["state_key"]) for e in body["state"]],
            [("m.room.member", self.bob.user_id)],
        )
        plain = await self.ok(
            "GET",
            f"/rooms/{path_part(room_id)}/messages",
            user=self.alice,
            query={"dir": "b", "limit": 1},
        )
        self.assertEqual(plain["state"], [])

    @deferred_test
    async def test_edit_passes_through(self):
        """An edit (m.relates_to with rel_type m.replace) comes back with its content intact."""
        room_id = await self.room_with_messages(1)
        room = path_part(room_id)
        original = await self.send_text(self.alice, room_id, "helo")
        edit = {
            "msgtype": "m.text",
            "body": "* hello",
            "m.new_content": {"msgtype": "m.text", "body": "hello"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original},
        }
        await self.ok("PUT", f"/rooms/{room}/send/m.room.message/edit1", edit, self.alice)
        page = await self.ok(
            "GET", f"/rooms/{room}/messages", user=self.bob, query={"dir": "b", "limit": 2}
        )
        self.assertEqual(page["chunk"][0]["content"], edit)
        self.assertEqual(page["chunk"][1]["event_id"], original)

    @deferred_test
    async def test_redacted_events_in_history(self):
        """Redacted messages are served pruned in the history."""
        room_id = await self.room_with_messages(2)
        room = path_part(room_id)
        target = await self.send_text(self.alice, room_id, "secret")
        await self.ok("PUT", f"/rooms/{room}/redact/{path_part(target)}/x1", {}, self.alice)
        page = await self.ok(
            "GET", f"/rooms/{room}/messages", user=self.bob, query={"dir": "b", "limit": 2}
        )
        redacted = [e for e in page["chunk"] if e["event_id"] == target][0]
        self.assertEqual(redacted["content"], {})
        self.assertIn("redacted_because", redacted["unsigned"])

    @deferred_test
    async def test_state_events_carry_prev_content(self):
        """A state change in the timeline carries the content it replaced, pruned if that was redacted."""
        room_id = await self.create_room(self.alice, preset="public_chat", name="First")
        room = path_part(room_id)
        second = await self.ok(
            "PUT", f"/rooms/{room}/state/m.room.name", {"name": "Second"}, self.alice
        )
        await self.ok(
            "PUT", f"/rooms/{room}/redact/{path_part(second['event_id'])}/red1", {}, self.alice
        )
        await self.ok("PUT", f"/rooms/{room}/state/m.room.name", {"name": "Third"}, self.alice)
        await self.ok("PUT", f"/rooms/{room}/state/m.room.name", {"name": "Fourth"}, self.alice)
        page = await self.ok(
            "GET",
            f"/rooms/{room}/messages",
            user=self.alice,
            spec=MESSAGES,
            query={"dir": "b", "filter": filter_query(types=["m.room.name"])},
        )
        fourth, third, redacted, first = page["chunk"]
        self.assertEqual(fourth["unsigned"]["prev_content"], {"name": "Third"})
        self.assertEqual(third["unsigned"]["prev_content"], {})
        self.assertEqual(third["unsigned"]["replaces_state"], second["event_id"])
        self.assertNotIn("prev_content", redacted["unsigned"])
        self.assertNotIn("prev_content", first["unsigned"])

    @deferred_test
    async def test_history_visibility_joined(self):
        """With history_visibility 'joined', a later member does not see what came before their join."""
        room_id = await self.create_room(self.alice, preset="public_chat")
        room = path_part(room_id)
        await self.ok(
            "PUT",
            f"/rooms/{room}/state/m.room.history_visibility",
            {"history_visibility": "joined"},
            self.alice,
        )
        await self.send_text(self.alice, room_id, "before")
        await self.join(self.carol, room_id)
        await self.send_text(self.alice, room_id, "after")
        page = await self.ok(
            "GET", f"/rooms/{room}/messages", user=self.carol, query={"dir": "b", "limit": 50}
        )
        self.assertEqual(bodies(page["chunk"]), ["after"])
        everything = await self.ok(
            "GET", f"/rooms/{room}/messages", user=self.alice, query={"dir": "b", "limit": 50}
        )
        self.assertEqual(bodies(everything["chunk"]), ["after", "before"])

    @deferred_test
    async def test_bad_requests(self):
        """Missing or bad dir, limit, tokens or filter give 400; non-members and unknown rooms 403."""
        room_id = await self.room_with_messages(1)
        room = path_part(room_id)
        path = f"/rooms/{room}/messages"
        await self.fails(400, "M_MISSING_PARAM", "GET", path, user=self.alice)
        await self.fails(400, "M_INVALID_PARAM", "GET", path, user=self.alice, query={"dir": "x"})
        await self.fails(
            400, "M_INVALID_PARAM", "GET", path, user=self.alice, query={"dir": "b", "limit": "ten"}
        )
        await self.fails(
            400, "M_INVALID_PARAM", "GET", path, user=self.alice, query={"dir": "b", "limit": -1}
        )
        await self.fails(
            400, "M_INVALID_PARAM", "GET", path, user=self.alice, query={"dir": "b", "from": "zzz"}
        )
        await self.fails(
            400, "M_INVALID_PARAM", "GET", path, user=self.alice, query={"dir": "b", "to": "t1"}
        )
        await self.fails(
            400, "M_NOT_JSON", "GET", path, user=self.alice, query={"dir": "b", "filter": "{"}
        )
        await self.fails(
            400, "M_INVALID_PARAM", "GET", path, user=self.alice, query={"dir": "b", "filter": "[]"}
        )
        await self.fails(
            400,
            "M_INVALID_PARAM",
            "GET",
            path,
            user=self.alice,
            query={"dir": "b", "filter": filter_query(types="m.room.message")},
        )
        await self.fails(403, "M_FORBIDDEN", "GET", path, user=self.carol, query={"dir": "b"})
        await self.fails(
            403,
            "M_FORBIDDEN",
            "GET",
            f"/rooms/{path_part('!gone:test.example')}/messages",
            user=self.alice,
            query={"dir": "b"},
        )
        await self.fails(401, "M_MISSING_TOKEN", "GET", path, query={"dir": "b"})

    @deferred_test
    async def test_world_readable_room(self):
        """Anybody may page a world_readable room, seeing what was sent while it was world_readable."""
        room_id = await self.room_with_messages(1)
        room = path_part(room_id)
        await self.ok(
            "PUT",
            f"/rooms/{room}/state/m.room.history_visibility",
            {"history_visibility": "world_readable"},
            self.alice,
        )
        await self.send_text(self.alice, room_id, "public")
        page = await self.ok(
            "GET", f"/rooms/{room}/messages", user=self.carol, query={"dir": "b", "limit": 50}
        )
        self.assertEqual(bodies(page["chunk"]), ["public"])


class ContextTests(RoomApiTestCase):
    """Events around one event."""

    @deferred_test
    async def test_context(self):
        """The event comes with events before (newest first), after (oldest first), tokens and state."""
        room_id = await self.create_room(self.alice, preset="public_chat")
        room = path_part(room_id)
        await self.join(self.bob, room_id)
        ids = [await self.send_text(self.alice, room_id, f"c{n}") for n in range(9)]
        body = await self.ok(
            "GET",
            f"/rooms/{room}/context/{path_part(ids[4])}",
            user=self.bob,
            query={"limit": 4},
            spec=CONTEXT,
        )
        self.assertEqual(body["event"]["event_id"], ids[4])
        self.assertEqual(bodies(body["events_before"]), ["c3", "c2"])
        self.assertEqual(bodies(body["events_after"]), ["c5", "c6"])
        self.assertIn(("m.room.create", ""), {(e["type"], e["state_key"]) for e in body["state"]})
        back = await self.ok(
            "GET",
            f"/rooms/{room}/messages",
            user=self.bob,
            query={"dir": "b", "from": body["start"], "limit": 2},
        )
        self.assertEqual(bodies(back["chunk"]), ["c1", "c0"])
        forward = await self.ok(
            "GET",
            f"/rooms/{room}/messages",
            user=self.bob,
            query={"dir": "f", "from": body["end"], "limit": 2},
        )
        self.assertEqual(bodies(forward["chunk"]), ["c7", "c8"])

    @deferred_test
    async def test_context_filter_and_lazy_members(self):
        """The filter applies to the surrounding events and state; lazy loading keeps senders' members only."""
        room_id = await self.create_room(self.alice, preset="public_chat")
        room = path_part(room_id)
        await self.join(self.bob, room_id)
        await self.send_text(self.bob, room_id, "from bob")
        middle = await self.send_text(self.alice, room_id, "middle")
        await self.send_text(self.alice, room_id, "after")
        body = await self.ok(
            "GET",
            f"/rooms/{room}/context/{path_part(middle)}",
            user=self.alice,
            spec=CONTEXT,
            query={
                "limit": 10,
                "filter": filter_query(senders=[self.alice.user_id], lazy_load_members=True),
            },
        )
        self.assertNotIn("from bob", bodies(body["events_before"]))
        self.assertEqual(bodies(body["events_after"]), ["after"])
        self.assertEqual({e["state_key"] for e in body["state"]}, {self.alice.user_id})

    @deferred_test
    async def test_context_refused(self):
        """Unknown events are 404, events the user cannot see are 404, bad limits 400."""
        room_id = await self.create_room(self.alice)
        room = path_part(room_id)
        event_id = await self.send_text(self.alice, room_id, "hidden")
        await self.fails(
            404,
            "M_NOT_FOUND",
            "GET",
            f"/rooms/{room}/context/{path_part('$nope')}",
            user=self.alice,
        )
        await self.fails(
            403, "M_FORBIDDEN", "GET", f"/rooms/{room}/context/{path_part(event_id)}", user=self.bob
        )
        await self.fails(
            400,
            "M_INVALID_PARAM",
            "GET",
            f"/rooms/{room}/context/{path_part(event_id)}",
            user=self.alice,
            query={"limit": "x"},
        )
