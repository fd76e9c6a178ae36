"""Failures inside modules are contained: a raising, failing or hanging hook is logged with the
module's name and handled by its ``on_failure`` policy; the server keeps serving."""

import os

from twisted.internet import defer, task
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from mxref.errors import MatrixError
from mxref.modules.hooks import ModuleHooks
from mxref.modules.interfaces import Allow, Reject
from mxref.modules.loader import load_modules
from mxref.testing.homeserver import test_config
from tests.client.support import deferred_test
from tests.modules.sample_modules import journal
from tests.modules.support import module_entry, sample, start_server


class LogCapture:
    """Collects the Twisted log events emitted while a test runs."""

    def __init__(self, testcase):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        testcase.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def about(self, module_name):
        """The log events naming ``module_name`` as their module."""
        return [event for event in self.events if event.get("module") == module_name]


class RaisingModuleTests(unittest.TestCase):
    """A module whose hooks raise or fail."""

    async def start(self, on_failure, failing_deferred=False, create_room=True):
        config = {"journal": self.id(), "failing_deferred": failing_deferred}
        self.server = await start_server(
            self, [module_entry(sample("RaisingModule"), config, on_failure=on_failure)]
        )
        self.alice, self.token = await self.server.user("alice", "local password")
        if create_room:
            self.room_id = (await self.server.create_room(self.token)).json()["room_id"]

    @deferred_test
    async def test_fail_closed_refuses(self):
        """Under fail_closed, a raising event check refuses the event with 403 and is logged by name."""
        logs = LogCapture(self)
        await self.start("fail_closed", create_room=False)
        # Even room creation's events are refused: the module refuses everything it cannot check.
        response = await self.server.create_room(self.token)
        self.assertEqual((response.code, response.json()["errcode"]), (403, "M_FORBIDDEN"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        failures = [e for e in logs.about("raising") if e.get("hook") == "check_event"]
        self.assertEqual(len(failures), 1)
        self.assertEqual((await self.server.request("GET", "/_matrix/client/versions")).code, 200)

    @deferred_test
    async def test_fail_open_lets_through(self):
        """Under fail_open, the raising module is skipped: rooms are created and messages sent."""
        await self.start("fail_open")
        response = await self.server.send_message(self.token, self.room_id, "hello", "t1")
        self.assertEqual(response.code, 200)
        self.assertTrue(self.flushLoggedErrors(RuntimeError))

    @deferred_test
    async def test_failed_deferred_contained(self):
        """A hook returning a failed Deferred is handled like one that raises."""
        await self.start(
            {"check_event": "fail_open", "check_registration": "fail_closed"}, failing_deferred=True
        )
        self.assertEqual(
            (await self.server.send_message(self.token, self.room_id, "hi", "t1")).code, 200
        )
        body = {"username": "bob", "password": "long password", "auth": {"type": "m.login.dummy"}}
        response = await self.server.request("POST", "/_matrix/client/v3/register", body)
        self.assertEqual(
            (response.code, response.json()["errcode"]), (403, "M_FORBIDDEN"), response.body
        )
        self.assertTrue(self.flushLoggedErrors(RuntimeError))

    @deferred_test
    async def test_password_provider_policies(self):
        """A raising password provider: fail_open falls back to local passwords, fail_closed refuses."""
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": "local password",
        }
        await self.start("fail_open")
        self.assertEqual(
            (await self.server.request("POST", "/_matrix/client/v3/login", body)).code, 200
        )
        await self.start({"check_event": "fail_open", "check_password": "fail_closed"})
        response = await self.server.request("POST", "/_matrix/client/v3/login", body)
        self.assertEqual((response.code, response.json()["errcode"]), (403, "M_FORBIDDEN"))
        self.assertTrue(self.flushLoggedErrors(RuntimeError))


class HangingModuleTests(unittest.TestCase):
    """A module whose event check never answers, on a whole server with a short timeout."""

    async def start(self, policy):
        entries = [
            module_entry(
                sample("HangingModule"),
                {"journal": self.id()},
                hook_timeout="150ms",
                on_failure=policy,
            ),
        ]
        self.server = await start_server(self, entries)
        _, self.token = await self.server.user("alice")

    @deferred_test
    async def test_fail_open_after_timeout(self):
        """Under fail_open the request completes once the timeout passes, and the hook is cancelled."""
        logs = LogCapture(self)
        await self.start("fail_open")
        response = await self.server.create_room(self.token)
        self.assertEqual(response.code, 200)
        calls = journal(self.id())
        self.assertIn(("hanging", "cancelled", "m.room.member"), calls)
        self.assertEqual(
            [hook for _, hook, _ in calls].count("check_event"),
            [hook for _, hook, _ in calls].count("cancelled"),
        )
        self.assertTrue(
            any("did not answer" in e.get("log_format", "") for e in logs.about("hanging"))
        )

    @deferred_test
    async def test_fail_closed_after_timeout(self):
        """Under fail_closed the request is refused with 403 once the timeout passes."""
        await self.start("fail_closed")
        response = await self.server.create_room(self.token)
        self.assertEqual((response.code, response.json()["errcode"]), (403, "M_FORBIDDEN"))


class FakeClockHookTests(unittest.TestCase):
    """ModuleHooks on a fake clock: timeouts happen exactly when the clock says."""

    def hooks_with(self, *entries):
        config = test_config(os.path.abspath(self.mktemp()), overrides={"modules": list(entries)})
        self.clock = task.Clock()
        hooks = ModuleHooks(self.clock)
        hooks.install(load_modules(config.modules, lambda name: None))
        return hooks

    def test_hanging_check_times_out_on_the_clock(self):
        """A hanging check holds the verdict until hook_timeout passes on the clock, then fails open."""
        hooks = self.hooks_with(
            module_entry(
                sample("HangingModule"),
                {"journal": self.id()},
                hook_timeout="5s",
                on_failure="fail_open",
            ),
            module_entry(sample("WordChecker"), {"journal": self.id(), "reject_word": "no"}),
        )
        verdict = hooks.check_event(
            {"type": "m.room.message", "content": {"body": "no"}}, origin=None
        )
        self.assertNoResult(verdict)
        self.clock.advance(4.9)
        self.assertNoResult(verdict)
        self.clock.advance(0.1)
        self.assertEqual(
            self.successResultOf(verdict), Reject("M_FORBIDDEN", "wordchecker refuses 'no'")
        )
        self.assertEqual(
            [hook for _, hook, _ in journal(self.id())], ["check_event", "cancelled", "check_event"]
        )

    def test_hanging_check_fails_closed(self):
        """Under fail_closed the timeout is a rejection and later modules are not asked."""
        hooks = self.hooks_with(
            module_entry(sample("HangingModule"), {"journal": self.id()}, hook_timeout="1s"),
            module_entry(sample("WordChecker"), {"journal": self.id()}),
        )
        verdict = hooks.check_event(
            {"type": "m.room.message", "content": {"body": "x"}}, origin=None
        )
        self.clock.advance(1)
        self.assertEqual(self.successResultOf(verdict).errcode, "M_FORBIDDEN")
        self.assertEqual([name for name, _, _ in journal(self.id())], ["hanging", "hanging"])

    def test_remote_replacement_ignored(self):
        """A content replacement for a remote event is ignored: remote content is signed."""
        hooks = self.hooks_with(
            module_entry(sample("WordChecker"), {"replace": {"old": "a", "new": "b"}})
        )
        verdict = hooks.check_event(
            {"type": "m.room.message", "content": {"body": "a"}}, origin="remote.example"
        )
        self.assertEqual(self.successResultOf(verdict), Allow())

    def test_local_rejection_raises_matrix_error(self):
        """check_local_event turns a rejection into the MatrixError the client gets."""
        hooks = self.hooks_with(
            module_entry(sample("WordChecker"), {"reject_word": "x", "errcode": "M_X"})
        )
        failure = self.failureResultOf(
            hooks.check_local_event("!r:a", "@u:a", "m.room.message", {"body": "x"}), MatrixError
        )
        self.assertEqual((failure.value.code, failure.value.errcode), (403, "M_X"))

    def test_no_modules(self):
        """Without modules every check answers at once."""
        hooks = self.hooks_with()
        self.assertEqual(self.successResultOf(hooks.check_event({"type": "t"}, None)), Allow())
        self.assertIsNone(self.successResultOf(hooks.check_registration("a", "1.2.3.4")))
        self.assertFalse(self.successResultOf(hooks.check_password("@a:b", "pw")))
        self.assertIsNone(
            self.successResultOf(defer.maybeDeferred(hooks.event_persisted, {"type": "t"}))
        )
