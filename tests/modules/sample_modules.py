"""Small modules used by the tests: each implements hooks whose behaviour its config decides,
and records what it was asked in ``calls`` (a list shared through ``config["journal"]`` when
several modules must show their order).
"""

import re

from twisted.internet import defer
from twisted.web.resource import Resource
from zope.interface import implementer

from mxref.interfaces import (
    Allow,
    IEventChecker,
    IEventListener,
    IInviteChecker,
    ILoginChecker,
    IModule,
    IPasswordProvider,
    IRegistrationChecker,
    IResourceProvider,
    IRoomCreationChecker,
    Reject,
    ReplaceContent,
)

#: Journals shared between modules of one test, keyed by the ``journal`` config value.
JOURNALS = {}


def journal(name):
    """The shared list of ``(module name, hook, detail)`` for one test."""
    return JOURNALS.setdefault(name, [])


class _Recording:
    """Records calls into its journal; ``config["name"]`` renames an instance."""

    name = "recording"

    def __init__(self, config, api):
        self.name = config.get("name", type(self).name)
        self.config = config
        self.api = api
        self.calls = journal(config.get("journal", "default"))

    def record(self, hook, detail):
        self.calls.append((self.name, hook, detail))


@implementer(IModule, IEventChecker)
class WordChecker(_Recording):
    """``reject_word``: refuse messages containing it (``errcode``); ``replace``: swap
    ``old`` for ``new`` in message bodies; ``answer: bogus`` returns an invalid value."""

    name = "wordchecker"

    def check_event(self, event, origin):
        self.record(
            "check_event", (event.get("type"), origin, event.get("content", {}).get("body"))
        )
        body = event.get("content", {}).get("body")
        if self.config.get("answer") == "bogus":
            return "definitely not a verdict"
        if not isinstance(body, str):
            return None
        word = self.config.get("reject_word")
        if word and word in body:
            return Reject(
                self.config.get("errcode", "M_FORBIDDEN"), f"{self.name} refuses {word!r}"
            )
        replace = self.config.get("replace")
        if replace and replace["old"] in body:
            content = dict(event["content"], body=body.replace(replace["old"], replace["new"]))
            return ReplaceContent(content)
        return Allow()


@implementer(IModule, IEventListener)
class EventRecorder(_Recording):
    """Remembers every persisted event it hears about."""

    name = "eventrecorder"

    def __init__(self, config, api):
        super().__init__(config, api)
        self.events = []

    def on_event_persisted(self, event):
        self.events.append(event)


@implementer(IModule, IRegistrationChecker, ILoginChecker, IRoomCreationChecker, IInviteChecker)
class Gatekeeper(_Recording):
    """Refuses registrations of localparts matching ``deny_localpart``, logins of
    ``deny_login``, room creation with a name matching ``deny_room_name``, invites of
    ``deny_invitee``; answers through Deferreds (``deferred: true``) or coroutines."""

    name = "gatekeeper"

    def _answer(self, refused, why):
        verdict = Reject("M_FORBIDDEN", why) if refused else None
        if self.config.get("style") == "deferred":
            return defer.succeed(verdict)
        if self.config.get("style") == "coroutine":

            async def later():
                return verdict

            return later()
        return verdict

    def check_registration(self, localpart, client_ip):
        self.record("check_registration", localpart)
        pattern = self.config.get("deny_localpart")
        return self._answer(
            bool(pattern and localpart and re.search(pattern, localpart)), "no such names here"
        )

    def check_login_allowed(self, user_id, login_type, client_ip):
        self.record("check_login_allowed", (user_id, login_type))
        return self._answer(user_id == self.config.get("deny_login"), "you may not log in")

    def check_room_creation(self, user_id, request):
        self.record("check_room_creation", (user_id, request.get("name")))
        pattern = self.config.get("deny_room_name")
        name = request.get("name")
        return self._answer(
            bool(pattern and name and re.search(pattern, name)), "no rooms like that"
        )

    def check_invite(self, inviter, invitee, room_id):
        self.record("check_invite", (inviter, invitee))
        return self._answer(invitee == self.config.get("deny_invitee"), "you may not invite them")


@implementer(IModule, IPasswordProvider)
class DirectoryProvider(_Recording):
    """A stand-in for LDAP: ``passwords`` maps localparts to passwords it knows (their
    accounts are created on first login); ``tokens`` maps one-time tokens of the login type
    ``org.example.token`` to localparts."""

    name = "directory"

    def login_types(self):
        return ["org.example.token"]

    @defer.inlineCallbacks
    def _ensure_account(self, localpart):
        user_id = f"@{localpart}:{self.api.server_name}"
        try:
            yield self.api.get_profile(user_id)
        except Exception:
            yield self.api.register_user(localpart)
        return user_id

    def check_login(self, login_type, body):
        self.record("check_login", login_type)
        localpart = self.config.get("tokens", {}).get(body.get("token"))
        if localpart is None:
            return None
        return self._ensure_account(localpart)

    @defer.inlineCallbacks
    def check_password(self, user_id, password):
        self.record("check_password", user_id)
        localpart = user_id[1:].split(":", 1)[0]
        if self.config.get("passwords", {}).get(localpart) != password:
            return None
        yield self._ensure_account(localpart)
        return True


@implementer(IModule, IEventChecker, IRegistrationChecker, IPasswordProvider)
class RaisingModule(_Recording):
    """Every hook raises (or, with ``failing_deferred: true``, returns a failed Deferred)."""

    name = "raising"

    def _fail(self, hook):
        self.record(hook, None)
        error = RuntimeError(f"{self.name} is broken")
        if self.config.get("failing_deferred"):
            return defer.fail(error)
        raise error

    def check_event(self, event, origin):
        return self._fail("check_event")

    def check_registration(self, localpart, client_ip):
        return self._fail("check_registration")

    def login_types(self):
        return []

    def check_login(self, login_type, body):
        return self._fail("check_login")

    def check_password(self, user_id, password):
        return self._fail("check_password")


@implementer(IModule, IEventChecker)
class HangingModule(_Recording):
    """``check_event`` returns a Deferred that never fires (and records its cancellation)."""

    name = "hanging"

    def check_event(self, event, origin):
        self.record("check_event", event.get("type"))

        def cancelled(deferred):
            self.record("cancelled", event.get("type"))

        return defer.Deferred(cancelled)


@implementer(IModule, IResourceProvider)
class PageModule(_Recording):
    """Serves ``/hello`` (text) under its prefix."""

    name = "pages"

    def resources(self):
        page = Resource()
        page.isLeaf = True
        page.render_GET = lambda request: b"hello from a module"
        return {"hello": page}


class NotAModule:
    """Declares nothing."""

    name = "nothing"

    def __init__(self, config, api):
        pass


@implementer(IModule, IEventChecker)
class ClaimsTooMuch:
    """Claims IEventChecker without ``check_event``."""

    name = "claims"

    def __init__(self, config, api):
        pass


@implementer(IModule)
class StrictConfig:
    """Refuses configs without ``needed`` in ``parse_config``."""

    name = "strict"

    @classmethod
    def parse_config(cls, config):
        if "needed" not in config:
            raise ValueError("needed: is required")
        return config

    def __init__(self, config, api):
        self.config = config
