"""Each hook's effect end to end through the Client-Server API of a whole test homeserver."""

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from mxref.errors import MatrixError
from mxref.testing.homeserver import make_test_homeserver
from tests.client.support import deferred_test
from tests.modules.sample_modules import journal
from tests.modules.support import make_example_module_importable, module_entry, sample, start_server

make_example_module_importable()

EXAMPLE = "mxref_example_module.PatternRejecter"


class ExampleModuleTests(unittest.TestCase):
    """The example module from ``contrib/example_module`` configured in a homeserver."""

    @deferred_test
    async def setUp(self):
        self.server = await start_server(
            self, [module_entry(EXAMPLE, {"pattern": "(?i)buy cheap"})]
        )
        self.alice, self.token = await self.server.user("alice")
        response = await self.server.create_room(self.token, name="Market")
        self.room_id = response.json()["room_id"]

    @deferred_test
    async def test_matching_message_refused(self):
        """A message whose body matches the pattern is refused with 403 M_FORBIDDEN."""
        response = await self.server.send_message(
            self.token, self.room_id, "BUY CHEAP watches", "t1"
        )
        self.assertEqual((response.code, response.json()["errcode"]), (403, "M_FORBIDDEN"))

    @deferred_test
    async def test_other_message_sent(self):
        """A message that does not match is sent and can be read back."""
        response = await self.server.send_message(self.token, self.room_id, "hello market", "t1")
        self.assertEqual(response.code, 200)
        event = await self.server.get_event(self.token, self.room_id, response.json()["event_id"])
        self.assertEqual(event["content"]["body"], "hello market")

    @deferred_test
    async def test_stats_resource(self):
        """GET /_mxref/example/stats counts the messages checked and refused."""
        await self.server.send_message(self.token, self.room_id, "hello", "t1")
        await self.server.send_message(self.token, self.room_id, "buy cheap pills", "t2")
        response = await self.server.request("GET", "/_mxref/example/stats")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.json(), {"pattern": "(?i)buy cheap", "checked": 2, "rejected": 1})


class EventCheckTests(unittest.TestCase):
    """IEventChecker: allow, reject, replace content; several modules in order."""

    def setUp(self):
        self.journal_name = self.id()

    async def start(self, *checkers):
        entries = [
            module_entry(sample("WordChecker"), dict(config, journal=self.journal_name))
            for config in checkers
        ]
        self.server = await start_server(self, entries)
        self.alice, self.token = await self.server.user("alice")
        self.room_id = (await self.server.create_room(self.token)).json()["room_id"]
        del journal(self.journal_name)[:]

    @deferred_test
    async def test_reject_with_module_errcode(self):
        """A rejection reaches the client with the module's errcode and message."""
        await self.start({"name": "one", "reject_word": "spam", "errcode": "ORG.EXAMPLE.SPAM"})
        response = await self.server.send_message(self.token, self.room_id, "more spam", "t1")
        self.assertEqual(response.code, 403)
        self.assertEqual(
            response.json(), {"errcode": "ORG.EXAMPLE.SPAM", "error": "one refuses 'spam'"}
        )

    @deferred_test
    async def test_replace_content(self):
        """A replacement content is what the room stores and clients read."""
        await self.start({"name": "one", "replace": {"old": "darn", "new": "d***"}})
        response = await self.server.send_message(self.token, self.room_id, "darn it", "t1")
        self.assertEqual(response.code, 200)
        event = await self.server.get_event(self.token, self.room_id, response.json()["event_id"])
        self.assertEqual(event["content"], {"msgtype": "m.text", "body": "d*** it"})

    @deferred_test
    async def test_later_module_sees_replaced_content(self):
        """Modules run in configuration order: the second sees the first's replacement."""
        await self.start(
            {"name": "first", "replace": {"old": "cat", "new": "dog"}},
            {"name": "second", "reject_word": "dog"},
        )
        response = await self.server.send_message(self.token, self.room_id, "a cat", "t1")
        self.assertEqual(response.json()["error"], "second refuses 'dog'")
        asked = [
            (name, detail[2])
            for name, hook, detail in journal(self.journal_name)
            if hook == "check_event"
        ]
        self.assertEqual(asked, [("first", "a cat"), ("second", "a dog")])

    @deferred_test
    async def test_order_reversed(self):
        """In the other order the rejecter sees the original text and the message goes through, changed."""
        await self.start(
            {"name": "first", "reject_word": "dog"},
            {"name": "second", "replace": {"old": "cat", "new": "dog"}},
        )
        response = await self.server.send_message(self.token, self.room_id, "a cat", "t1")
        self.assertEqual(response.code, 200)
        event = await self.server.get_event(self.token, self.room_id, response.json()["event_id"])
        self.assertEqual(event["content"]["body"], "a dog")

    @deferred_test
    async def test_first_rejection_wins(self):
        """The first module's rejection is returned and later modules are not asked."""
        await self.start(
            {"name": "first", "reject_word": "x"}, {"name": "second", "reject_word": "x"}
        )
        response = await self.server.send_message(self.token, self.room_id, "x", "t1")
        self.assertEqual(response.json()["error"], "first refuses 'x'")
        self.assertEqual([name for name, _, _ in journal(self.journal_name)], ["first"])

    @deferred_test
    async def test_invalid_answer_ignored(self):
        """A module answering something that is not a verdict is ignored: the message is sent."""
        await self.start(
            {"name": "bogus", "answer": "bogus"}, {"name": "strict", "reject_word": "never"}
        )
        response = await self.server.send_message(self.token, self.room_id, "fine", "t1")
        self.assertEqual(response.code, 200)
        self.assertEqual([name for name, _, _ in journal(self.journal_name)], ["bogus", "strict"])

    @deferred_test
    async def test_local_events_have_no_origin(self):
        """Local events are checked with origin None, state events included (room creation's too)."""
        await self.start({"name": "one"})
        await self.server.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{self.room_id}/state/m.room.topic/",
            {"topic": "t"},
            self.token,
        )
        self.assertEqual(
            journal(self.journal_name), [("one", "check_event", ("m.room.topic", None, None))]
        )


class EventListenerTests(unittest.TestCase):
    """IEventListener hears persisted events."""

    @deferred_test
    async def test_listener_hears_sent_message(self):
        """A sent message reaches on_event_persisted with its event ID, after room creation's events."""
        server = await start_server(self, [module_entry(sample("EventRecorder"))])
        _, token = await server.user("alice")
        room_id = (await server.create_room(token)).json()["room_id"]
        event_id = (await server.send_message(token, room_id, "hello", "t1")).json()["event_id"]
        recorder = server.module("eventrecorder")
        for _ in range(400):
            if any(e["event_id"] == event_id for e in recorder.events):
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        heard = [(e["type"], e["event_id"]) for e in recorder.events]
        self.assertIn(("m.room.message", event_id), heard)
        self.assertEqual(heard[0][0], "m.room.create")
        self.assertEqual(heard[-1], ("m.room.message", event_id))


class AccountAndRoomCheckTests(unittest.TestCase):
    """Registration, login, room creation and invite checks."""

    def setUp(self):
        self.journal_name = self.id()

    async def start(self, **config):
        config["journal"] = self.journal_name
        self.server = await start_server(self, [module_entry(sample("Gatekeeper"), config)])

    def register(self, username):
        body = {
            "username": username,
            "password": "long password",
            "auth": {"type": "m.login.dummy"},
        }
        return self.server.request("POST", "/_matrix/client/v3/register", body)

    @deferred_test
    async def test_registration_refused(self):
        """POST /register of a refused localpart answers 403 and creates no account."""
        await self.start(deny_localpart="^spam")
        response = await self.register("spammer")
        self.assertEqual((response.code, response.json()["errcode"]), (403, "M_FORBIDDEN"))
        self.assertIsNone(
            await self.server.homeserver.store.accounts.get_user("@spammer:test.example")
        )
        self.assertEqual((await self.register("bob")).code, 200)

    @deferred_test
    async def test_checks_answered_through_deferreds_and_coroutines(self):
        """Checks may answer through a Deferred or a coroutine."""
        for style in ("deferred", "coroutine"):
            self.server = await start_server(
                self,
                [module_entry(sample("Gatekeeper"), {"deny_localpart": "^spam", "style": style})],
            )
            self.assertEqual((await self.register("spammer")).code, 403, style)
            self.assertEqual((await self.register("bob")).code, 200, style)

    @deferred_test
    async def test_login_refused(self):
        """A user the login check refuses gets 403 even with the right password."""
        await self.start(deny_login="@mallory:test.example")
        await self.server.user("mallory", "right password")
        await self.server.user("bob", "right password")
        for localpart, code in (("mallory", 403), ("bob", 200)):
            body = {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": localpart},
                "password": "right password",
            }
            response = await self.server.request("POST", "/_matrix/client/v3/login", body)
            self.assertEqual(response.code, code, localpart)
        asked = [
            detail
            for _, hook, detail in journal(self.journal_name)
            if hook == "check_login_allowed"
        ]
        self.assertEqual(
            asked,
            [
                ("@mallory:test.example", "m.login.password"),
                ("@bob:test.example", "m.login.password"),
            ],
        )

    @deferred_test
    async def test_room_creation_refused(self):
        """createRoom refused by a module answers 403 and creates nothing."""
        await self.start(deny_room_name="(?i)casino")
        alice, token = await self.server.user("alice")
        response = await self.server.create_room(token, name="Casino Night")
        self.assertEqual((response.code, response.json()["errcode"]), (403, "M_FORBIDDEN"))
        rooms = await self.server.homeserver.store.rooms.get_rooms_for_user(alice)
        self.assertEqual(rooms, [])
        self.assertEqual((await self.server.create_room(token, name="Book club")).code, 200)

    @deferred_test
    async def test_invite_refused(self):
        """An invite refused by a module answers 403; other invites work, createRoom's too."""
        await self.start(deny_invitee="@carol:test.example")
        _, token = await self.server.user("alice")
        await self.server.user("bob")
        await self.server.user("carol")
        room_id = (await self.server.create_room(token, invite=["@bob:test.example"])).json()[
            "room_id"
        ]
        path = f"/_matrix/client/v3/rooms/{room_id}/invite"
        refused = await self.server.request("POST", path, {"user_id": "@carol:test.example"}, token)
        self.assertEqual((refused.code, refused.json()["errcode"]), (403, "M_FORBIDDEN"))
        members = await self.server.homeserver.store.rooms.get_members(room_id)
        self.assertEqual(members["@bob:test.example"].membership, "invite")
        self.assertNotIn("@carol:test.example", members)
        response = await self.server.create_room(token, invite=["@carol:test.example"])
        self.assertEqual(response.code, 403)


class PasswordProviderTests(unittest.TestCase):
    """IPasswordProvider: its own login type, and passwords mxref does not hold."""

    @deferred_test
    async def setUp(self):
        config = {
            "passwords": {"carol": "ldap secret"},
            "tokens": {"tok-1": "dave"},
            "journal": self.id(),
        }
        self.server = await start_server(self, [module_entry(sample("DirectoryProvider"), config)])

    def login(self, body):
        return self.server.request("POST", "/_matrix/client/v3/login", body)

    @deferred_test
    async def test_login_type_advertised(self):
        """GET /login lists the provider's login type after m.login.password."""
        response = await self.server.request("GET", "/_matrix/client/v3/login")
        self.assertEqual(
            response.json()["flows"], [{"type": "m.login.password"}, {"type": "org.example.token"}]
        )

    @deferred_test
    async def test_login_with_provider_type(self):
        """A token the provider knows logs in (creating the account); an unknown one is refused."""
        response = await self.login({"type": "org.example.token", "token": "tok-1"})
        self.assertEqual(response.code, 200, response.body)
        self.assertEqual(response.json()["user_id"], "@dave:test.example")
        whoami = await self.server.request(
            "GET", "/_matrix/client/v3/account/whoami", token=response.json()["access_token"]
        )
        self.assertEqual(whoami.json()["user_id"], "@dave:test.example")
        refused = await self.login({"type": "org.example.token", "token": "tok-2"})
        self.assertEqual((refused.code, refused.json()["errcode"]), (403, "M_FORBIDDEN"))

    @deferred_test
    async def test_password_mxref_does_not_hold(self):
        """A user only the provider knows logs in with m.login.password; a wrong password is refused."""
        body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "Carol"}}
        wrong = await self.login(dict(body, password="guess"))
        self.assertEqual(wrong.code, 403)
        response = await self.login(dict(body, password="ldap secret"))
        self.assertEqual(response.code, 200, response.body)
        self.assertEqual(response.json()["user_id"], "@carol:test.example")

    @deferred_test
    async def test_local_passwords_still_work(self):
        """Users with local passwords log in as before when the provider does not know them."""
        await self.server.user("erin", "local password")
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "erin"},
            "password": "local password",
        }
        self.assertEqual((await self.login(body)).code, 200)


class ModuleResourceTests(unittest.TestCase):
    """IResourceProvider resources are mounted on the client listener."""

    @deferred_test
    async def test_default_prefix(self):
        """Resources appear under /_mxref/<module name>/."""
        server = await start_server(self, [module_entry(sample("PageModule"))])
        response = await server.request("GET", "/_mxref/pages/hello")
        self.assertEqual((response.code, response.body), (200, b"hello from a module"))

    @deferred_test
    async def test_configured_prefix(self):
        """resource_prefix moves them."""
        server = await start_server(
            self, [module_entry(sample("PageModule"), resource_prefix="/custom/place")]
        )
        response = await server.request("GET", "/custom/place/hello")
        self.assertEqual((response.code, response.body), (200, b"hello from a module"))
        self.assertEqual((await server.request("GET", "/_mxref/pages/hello")).code, 404)


class ServiceLevelTests(unittest.TestCase):
    """The module-author test recipe of docs/modules.md, run as written there."""

    @defer.inlineCallbacks
    def test_docs_recipe(self):
        """A module configured through make_test_homeserver refuses an event sent through the services."""
        modules = [{"module": sample("WordChecker"), "config": {"reject_word": "HELLO"}}]
        hs = yield make_test_homeserver(self, reactor, overrides={"modules": modules})
        alice = yield defer.ensureDeferred(hs.registrar.register_user("alice", "pw"))
        room_id = yield hs.room_creator.create_room(alice)
        error = yield self.assertFailure(
            hs.event_creator.send_event(room_id, alice, "m.room.message", {"body": "HELLO THERE"}),
            MatrixError,
        )
        self.assertEqual(error.errcode, "M_FORBIDDEN")
        self.assertEqual([m.name for m in hs.modules], ["wordchecker"])
