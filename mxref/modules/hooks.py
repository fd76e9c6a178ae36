"""Running the modules' hooks: each hook over the modules that implement it, in configuration
order, each call bounded by the module's ``hook_timeout``, failures contained by its
``on_failure`` policy.

Semantics shared by every check (``docs/modules.md`` has the per-hook detail):

- modules are asked in the order of the ``modules:`` list; the first :class:`Reject` wins and
  the modules after it are not asked;
- ``None`` and :class:`Allow` mean "no objection"; any other value is logged with the
  module's name and ignored;
- a hook that raises, whose Deferred fails, or that has not answered after ``hook_timeout``
  (its Deferred is then cancelled) is logged with the module's name; under ``fail_closed``
  the request is refused with 403 ``M_FORBIDDEN``, under ``fail_open`` the module is
  treated as having no opinion.
"""

import inspect

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from mxref.config.modules import FAIL_CLOSED
from mxref.errors import MatrixError
from mxref.modules.interfaces import (
    Allow,
    IEventChecker,
    IEventListener,
    IInviteChecker,
    ILoginChecker,
    IPasswordProvider,
    IRegistrationChecker,
    IRoomCreationChecker,
    Reject,
    ReplaceContent,
)
from mxref.rooms.persister import ROOM_EVENTS_STREAM
from mxref.rooms.state import with_event_id


@attrs.frozen
class LoadedModule:
    """A constructed module and how its hooks are run.

    :ivar name: its unique name.
    :ivar module: the module object.
    :ivar config: its :class:`~mxref.config.modules.ModuleConfig`.
    """

    name: str
    module: object
    config: object

    @property
    def hook_timeout(self) -> float:
        """Seconds one hook call may take."""
        return self.config.hook_timeout_ms / 1000.0

    def failure_policy(self, hook: str) -> str:
        """``"fail_closed"`` or ``"fail_open"`` for one hook method."""
        return self.config.failure_policy(hook)


@attrs.frozen
class _Outcome:
    """What one hook call gave: ``failed`` when it raised, failed or timed out."""

    value: object = None
    failed: bool = False


def module_failure_error(hook: str) -> MatrixError:
    """The error a request gets when a ``fail_closed`` module could not answer ``hook``."""
    return MatrixError(
        403, "M_FORBIDDEN", f"Refused: a server module could not run its {hook} check"
    )


class ModuleHooks:
    """Runs every hook of the installed modules.

    Built empty by the composition root and handed to the services; :meth:`install` gives it
    the modules once they are constructed (they need the services for their API).

    :param clock: an ``IReactorTime`` for the hook timeouts.

    :ivar login_types: ``{login type: check(body)}`` for the password providers' own login
        types, the mapping :class:`~mxref.client.account.service.LoginService` reads
        (filled by :meth:`install`).
    """

    log = Logger()

    def __init__(self, clock):
        self._clock = clock
        self._modules = ()
        self._provider_types = {}
        self.login_types = {}
        self._listener_queue = defer.succeed(None)

    @property
    def modules(self) -> tuple:
        """The installed :class:`LoadedModule` objects, in configuration order."""
        return self._modules

    def install(self, modules) -> None:
        """Start running the hooks of ``modules`` (:class:`LoadedModule`, configuration order).

        Password providers' login types are read here.

        :raises ValueError: when a provider's ``login_types()`` is not a list of strings or
            claims ``m.login.password``.
        """
        self._modules = tuple(modules)
        self._provider_types = {}
        for loaded in self.implementing(IPasswordProvider):
            types = loaded.module.login_types()
            if (
                types is None
                or isinstance(types, str)
                or not all(isinstance(t, str) and t for t in types)
            ):
                raise ValueError(
                    f"module {loaded.name}: login_types() must return login type strings, not {types!r}"
                )
            types = tuple(types)
            self._provider_types[loaded.name] = types
            for login_type in types:
                if login_type == "m.login.password":
                    raise ValueError(
                        f"module {loaded.name}: m.login.password is checked with check_password, "
                        "not listed in login_types()"
                    )
                self.login_types.setdefault(login_type, _LoginTypeCheck(self, login_type))

    def implementing(self, interface) -> list:
        """The installed modules providing ``interface``, in configuration order."""
        return [loaded for loaded in self._modules if interface.providedBy(loaded.module)]

    # -- calling one module's hook --------------------------------------------------------------

    def _call(self, loaded, hook, *args):
        """Call ``loaded.module.<hook>(*args)`` with the timeout; never fails.

        :returns: Deferred firing with an :class:`_Outcome`.
        """

        def invoke():
            result = getattr(loaded.module, hook)(*args)
            if inspect.isawaitable(result) and not isinstance(result, defer.Deferred):
                result = defer.ensureDeferred(result)
            return result

        called = defer.maybeDeferred(invoke)
        called.addTimeout(loaded.hook_timeout, self._clock)

        def failed(failure):
            if failure.check(defer.TimeoutError):
                self.log.error(
                    "module {module} did not answer {hook} within {timeout} s ({policy})",
                    module=loaded.name,
                    hook=hook,
                    timeout=loaded.hook_timeout,
                    policy=loaded.failure_policy(hook),
                )
            else:
                self.log.failure(
                    "module {module} failed in {hook} ({policy})",
                    failure,
                    module=loaded.name,
                    hook=hook,
                    policy=loaded.failure_policy(hook),
                )
            return _Outcome(failed=True)

        called.addCallbacks(lambda value: _Outcome(value=value), failed)
        return called

    def _ignore_invalid(self, loaded, hook, value):
        self.log.warn(
            "module {module} returned {value!r} from {hook}, which is not a valid answer; ignored",
            module=loaded.name,
            hook=hook,
            value=value,
        )

    @defer.inlineCallbacks
    def _first_rejection(self, interface, hook, *args):
        """Ask every module providing ``interface``; the first valid :class:`Reject`, else ``None``."""
        for loaded in self.implementing(interface):
            outcome = yield self._call(loaded, hook, *args)
            if outcome.failed:
                if loaded.failure_policy(hook) == FAIL_CLOSED:
                    return Reject(
                        "M_FORBIDDEN", f"Refused: a server module could not run its {hook} check"
                    )
                continue
            verdict = outcome.value
            if verdict is None or isinstance(verdict, Allow):
                continue
            if isinstance(verdict, Reject) and verdict.is_valid():
                self.log.info(
                    "module {module} refused {hook}: {errcode}",
                    module=loaded.name,
                    hook=hook,
                    errcode=verdict.errcode,
                )
                return verdict
            self._ignore_invalid(loaded, hook, verdict)
        return None

    @defer.inlineCallbacks
    def _raise_on_rejection(self, interface, hook, *args):
        rejection = yield self._first_rejection(interface, hook, *args)
        if rejection is not None:
            raise MatrixError(rejection.http_status, rejection.errcode, rejection.msg)

    # -- events ---------------------------------------------------------------------------------

    @defer.inlineCallbacks
    def check_event(self, event, origin=None):
        """Run :class:`~mxref.modules.interfaces.IEventChecker` over an event.

        :param event: for a local client, the proposed event (see
            :meth:`check_local_event`); for federation, the PDU dict with ``event_id``,
            after it passed the authorization rules.
        :param origin: ``None`` for a local client; the sending server's name otherwise.
        :returns: Deferred firing with a :class:`Reject` (the first), or an :class:`Allow`
            when no module objected and none changed the content, or a
            :class:`ReplaceContent` with the final content (local events only: for a
            remote event, replacements are logged and ignored).
        """
        current = event
        replaced = False
        for loaded in self.implementing(IEventChecker):
            outcome = yield self._call(loaded, "check_event", current, origin)
            if outcome.failed:
                if loaded.failure_policy("check_event") == FAIL_CLOSED:
                    return Reject(
                        "M_FORBIDDEN",
                        "Refused: a server module could not run its check_event check",
                    )
                continue
            verdict = outcome.value
            if verdict is None or isinstance(verdict, Allow):
                continue
            if isinstance(verdict, Reject) and verdict.is_valid():
                self.log.info(
                    "module {module} refused an event of type {type} from {sender}",
                    module=loaded.name,
                    type=event.get("type"),
                    sender=event.get("sender"),
                )
                return verdict
            if isinstance(verdict, ReplaceContent) and isinstance(verdict.content, dict):
                if origin is not None:
                    self.log.warn(
                        "module {module} tried to replace the content of {event_id} from {origin}; "
                        "remote events are signed, so it is kept as it is",
                        module=loaded.name,
                        event_id=event.get("event_id"),
                        origin=origin,
                    )
                    continue
                current = dict(current, content=verdict.content)
                replaced = True
                continue
            self._ignore_invalid(loaded, "check_event", verdict)
        if replaced:
            return ReplaceContent(current["content"])
        return Allow()

    @defer.inlineCallbacks
    def check_local_event(self, room_id, sender, event_type, content, state_key=None, redacts=None):
        """Run the event checks over an event a local user is about to send.

        :returns: Deferred firing with the content to build the event with (the modules'
            replacement, or ``content``).
        :raises MatrixError: (through the Deferred) the first module's rejection.
        """
        proposed = {"type": event_type, "room_id": room_id, "sender": sender, "content": content}
        if state_key is not None:
            proposed["state_key"] = state_key
        if redacts is not None:
            proposed["redacts"] = redacts
        verdict = yield self.check_event(proposed, origin=None)
        if isinstance(verdict, Reject):
            raise MatrixError(verdict.http_status, verdict.errcode, verdict.msg)
        if isinstance(verdict, ReplaceContent):
            return verdict.content
        return content

    @defer.inlineCallbacks
    def refuses_remote_event(self, event, origin):
        """Run the event checks over an event received from ``origin`` that passed the
        authorization rules (the federation receiver soft-fails it when refused).

        :param event: the PDU dict with ``event_id``.
        :returns: Deferred firing with ``True`` when a module refuses it.
        """
        verdict = yield self.check_event(event, origin=origin)
        if isinstance(verdict, Reject):
            self.log.info(
                "modules refused {event_id} from {origin} ({errcode}); it is soft-failed",
                event_id=event.get("event_id"),
                origin=origin,
                errcode=verdict.errcode,
            )
            return True
        return False

    def event_persisted(self, event) -> None:
        """Tell every :class:`~mxref.modules.interfaces.IEventListener`, in configuration
        order, about a persisted event; nothing waits for them (failures are logged).

        :param event: the event dict with ``event_id``.
        """
        for loaded in self.implementing(IEventListener):
            self._call(loaded, "on_event_persisted", event)

    def follow_persisted_events(self, notifier, events) -> None:
        """Feed :meth:`event_persisted` from the notifier's room-event stream (nothing is
        subscribed when no module listens).

        :param notifier: the :class:`~mxref.notifier.Notifier`.
        :param events: an :class:`~mxref.storage.interfaces.IEventStore` to read the new events.
        """
        if not self.implementing(IEventListener):
            return

        def on_notification(notification):
            if notification.stream_name != ROOM_EVENTS_STREAM or not isinstance(
                notification.position, int
            ):
                return
            # One at a time, so listeners hear events in stream order.
            self._listener_queue.addCallback(
                lambda _: self._deliver_at(
                    events, notification.position, sorted(notification.room_ids)
                )
            )

        notifier.subscribe(on_notification)

    @defer.inlineCallbacks
    def _deliver_at(self, events, position, room_ids):
        try:
            chunks = yield events.get_events_since(position - 1, room_ids, 10, to_stream=position)
        except Exception:
            self.log.failure(
                "could not read the event at stream position {position} for the modules",
                position=position,
            )
            return
        for room_id in room_ids:
            chunk = chunks.get(room_id)
            for stored in chunk.events if chunk is not None else ():
                if stored.stream_ordering == position:
                    self.event_persisted(with_event_id(stored))

    # -- accounts -------------------------------------------------------------------------------

    def check_registration(self, localpart, client_ip):
        """Run :class:`~mxref.modules.interfaces.IRegistrationChecker`.

        :returns: Deferred firing with ``None``.
        :raises MatrixError: (through the Deferred) the first rejection.
        """
        return self._raise_on_rejection(
            IRegistrationChecker, "check_registration", localpart, client_ip
        )

    def check_login_allowed(self, user_id, login_type, client_ip):
        """Run :class:`~mxref.modules.interfaces.ILoginChecker`.

        :returns: Deferred firing with ``None``.
        :raises MatrixError: (through the Deferred) the first rejection.
        """
        return self._raise_on_rejection(
            ILoginChecker, "check_login_allowed", user_id, login_type, client_ip
        )

    @defer.inlineCallbacks
    def check_login(self, login_type, body):
        """Ask the password providers of ``login_type``, in order, for the user a
        ``POST /login`` body proves.

        :returns: Deferred firing with the first user ID a provider returns, or ``None``.
        :raises MatrixError: (through the Deferred) 403 when a ``fail_closed`` provider fails.
        """
        for loaded in self.implementing(IPasswordProvider):
            if login_type not in self._provider_types.get(loaded.name, ()):
                continue
            outcome = yield self._call(loaded, "check_login", login_type, body)
            if outcome.failed:
                if loaded.failure_policy("check_login") == FAIL_CLOSED:
                    raise module_failure_error("check_login")
                continue
            if outcome.value is None:
                continue
            if isinstance(outcome.value, str):
                return outcome.value
            self._ignore_invalid(loaded, "check_login", outcome.value)
        return None

    @defer.inlineCallbacks
    def check_password(self, user_id, password):
        """Ask the password providers, in order, whether ``password`` is ``user_id``'s.

        :returns: Deferred firing with ``True`` when one accepts, else ``False``.
        :raises MatrixError: (through the Deferred) 403 when a ``fail_closed`` provider fails.
        """
        for loaded in self.implementing(IPasswordProvider):
            outcome = yield self._call(loaded, "check_password", user_id, password)
            if outcome.failed:
                if loaded.failure_policy("check_password") == FAIL_CLOSED:
                    raise module_failure_error("check_password")
                continue
            if outcome.value is True:
                self.log.info(
                    "module {module} accepted the password of {user_id}",
                    module=loaded.name,
                    user_id=user_id,
                )
                return True
            if outcome.value not in (None, False):
                self._ignore_invalid(loaded, "check_password", outcome.value)
        return False

    # -- rooms ----------------------------------------------------------------------------------

    def check_room_creation(self, user_id, request):
        """Run :class:`~mxref.modules.interfaces.IRoomCreationChecker`.

        :param request: the ``createRoom`` fields (a dict).
        :returns: Deferred firing with ``None``.
        :raises MatrixError: (through the Deferred) the first rejection.
        """
        return self._raise_on_rejection(
            IRoomCreationChecker, "check_room_creation", user_id, request
        )

    def check_invite(self, inviter, invitee, room_id):
        """Run :class:`~mxref.modules.interfaces.IInviteChecker`.

        :returns: Deferred firing with ``None``.
        :raises MatrixError: (through the Deferred) the first rejection.
        """
        return self._raise_on_rejection(IInviteChecker, "check_invite", inviter, invitee, room_id)


class _LoginTypeCheck:
    """The ``check(body)`` :class:`~mxref.client.account.service.LoginService` calls for one
    module-provided login type."""

    def __init__(self, hooks, login_type):
        self._hooks = hooks
        self._login_type = login_type

    def __call__(self, body):
        return self._hooks.check_login(self._login_type, body)
