"""The contracts between mxref and third-party modules: what a module is, the hooks it may
implement, and the small result values its checks return.

A module is a class. mxref constructs it once at start-up as ``ModuleClass(config, api)``
and checks the instance with ``zope.interface.verify.verifyObject`` against every interface
it declares (``@implementer(IModule, IEventChecker, ...)``). Every hook method may return its
value directly, or a Deferred (or a coroutine) firing with it.

When several modules implement one hook, they are asked in configuration order (the order of
the ``modules:`` list). For checks, the first rejection wins and later modules are not asked;
a module that returns a value the hook does not allow is logged and treated as having no
opinion. A hook that raises, fails or takes longer than its module's ``hook_timeout`` is
logged with the module's name and then handled by the module's failure policy for that hook
(``on_failure``): ``fail_closed`` refuses the request as a rejection would (403
``M_FORBIDDEN``), ``fail_open`` carries on as if the module had no opinion. Nothing a module
does crashes the server. ``docs/modules.md`` gives each hook's semantics in full.
"""

import attrs
from zope.interface import Attribute, Interface

# -- results of checks ----------------------------------------------------------------------


@attrs.frozen
class Allow:
    """A check's explicit "yes". Returning ``None`` means the same; later modules are still
    asked either way."""


@attrs.frozen
class Reject:
    """A check's "no": the request fails with this Matrix error.

    :ivar errcode: the Matrix error code (``"M_FORBIDDEN"``, or a namespaced one of your own).
    :ivar msg: the human-readable ``error`` text.
    :ivar http_status: the HTTP status of the response (403 by default; 400-599).
    """

    errcode: str = "M_FORBIDDEN"
    msg: str = "Refused by a server module"
    http_status: int = 403

    def is_valid(self) -> bool:
        """Whether the fields are usable in an error response."""
        return (
            isinstance(self.errcode, str)
            and bool(self.errcode)
            and isinstance(self.msg, str)
            and isinstance(self.http_status, int)
            and 400 <= self.http_status <= 599
        )


@attrs.frozen
class ReplaceContent:
    """An event check's "yes, but with this content instead" (only for events from local
    clients: a remote event is signed and hashed by its origin, so its content cannot change).

    :ivar content: the new ``content`` (a JSON object); later modules see this content.
    """

    content: dict


# -- the module itself ----------------------------------------------------------------------


class IModule(Interface):
    """A third-party module.

    The class is called once at start-up as ``ModuleClass(config, api)``:

    - ``config``: the module's ``config:`` mapping from ``homeserver.yaml``, or, when the class
      has a ``parse_config(config)`` classmethod, whatever that returned (it is called first
      and may raise :class:`~mxref.config.reader.ConfigError` or ``ValueError`` to stop
      the server with a message naming the module).
    - ``api``: the module's :class:`~mxref.modules.api.ModuleApi`, the only part of the
      server it should use.

    The constructor must not block; start background work with ``api.clock``.
    """

    name = Attribute(
        """A short name for logs and URLs (letters, digits, ``_``, ``-``); it is unique among
        the configured modules and gives the default resource prefix ``/_mxref/<name>``."""
    )


class IModuleFactory(Interface):
    """A Twisted plugin (an object in a ``twisted/plugins/*.py`` drop-in, declared with
    ``@provider(IPlugin, IModuleFactory)``) that makes a module.

    A plugin is only used when ``homeserver.yaml`` names it: ``module: <plugin name>``.
    """

    name = Attribute("The name configurations use for this plugin (no dots).")

    def make_module(config, api):
        """Build the module.

        :param config: the module's ``config:`` mapping.
        :param api: its :class:`~mxref.modules.api.ModuleApi`.
        :returns: an object providing :class:`IModule` (not a Deferred).
        """


# -- hooks ----------------------------------------------------------------------------------


class IEventChecker(Interface):
    """Sees every event before it is accepted, from local clients and over federation."""

    def check_event(event, origin):
        """Decide whether an event may enter a room.

        For a local client's event, ``event`` is the proposed event before it is built:
        ``{"type", "room_id", "sender", "content"}`` plus ``"state_key"`` for state events and
        ``"redacts"`` for redactions; ``origin`` is ``None``. For an event received over
        federation, ``event`` is the full PDU (with ``event_id``), already checked against
        the authorization rules, and ``origin`` is the sending server's name.

        :returns: ``None`` or :class:`Allow` to let it through; :class:`Reject` to refuse it
            (a local client gets the error; a remote event is kept in the room's graph but
            soft-failed: clients never see it and it is not used as current state);
            :class:`ReplaceContent` to change a local event's content (ignored, with a
            warning, for remote events). A value or a Deferred of one.
        """


class IEventListener(Interface):
    """Told about events after they are persisted."""

    def on_event_persisted(event):
        """An event became part of a room as clients see it (local or remote; not rejected,
        not soft-failed).

        :param event: the event dict (with ``event_id``).
        :returns: anything, or a Deferred; the result is not used and nothing waits for it
            (failures and timeouts are logged).
        """


class IRegistrationChecker(Interface):
    """Sees ``POST /register`` requests once their interactive authentication is complete."""

    def check_registration(localpart, client_ip):
        """Decide whether an account may be registered.

        :param localpart: the requested localpart (lower-cased), or ``None`` when the server
            will generate one.
        :param client_ip: the client's address.
        :returns: ``None``, :class:`Allow` or :class:`Reject` (or a Deferred of one).
        """


class ILoginChecker(Interface):
    """Sees every successful ``POST /login`` before a device and token are handed out."""

    def check_login_allowed(user_id, login_type, client_ip):
        """Decide whether a user whose credentials were accepted may log in.

        :param user_id: the full user ID.
        :param login_type: ``"m.login.password"`` or a module-provided type.
        :param client_ip: the client's address.
        :returns: ``None``, :class:`Allow` or :class:`Reject` (or a Deferred of one).
        """


class IPasswordProvider(Interface):
    """Checks credentials mxref's own database cannot: passwords held elsewhere (LDAP), or
    login types of its own advertised in ``GET /login``.

    Providers are asked in configuration order; the first that accepts wins. For
    ``m.login.password`` they are asked before the local password database, which is used
    when no provider accepts. Providers only add ways in: use :class:`ILoginChecker` to refuse.
    """

    def login_types():
        """The login types this provider handles besides ``m.login.password``.

        :returns: an iterable of type strings (``"org.example.otp"``), read once at start-up
            (not a Deferred); they are added to the ``flows`` of ``GET /login``.
        """

    def check_login(login_type, body):
        """Check a ``POST /login`` body of one of this provider's types.

        :param login_type: one of :meth:`login_types`.
        :param body: the whole request body.
        :returns: the full user ID of an existing local account the body proves (create it
            first with ``api.register_user`` if needed), or ``None`` (or a Deferred of one).
        """

    def check_password(user_id, password):
        """Check a password for ``m.login.password`` (logins and interactive authentication).

        :param user_id: the full, lower-cased user ID the client named (always local).
        :param password: the password.
        :returns: ``True`` to accept (the account must exist: create it with
            ``api.register_user``), anything else to let the next provider or the local
            database decide (or a Deferred of it).
        """


class IRoomCreationChecker(Interface):
    """Sees ``POST /createRoom`` requests."""

    def check_room_creation(user_id, request):
        """Decide whether a user may create a room.

        :param user_id: the creator.
        :param request: the request's fields: ``preset``, ``visibility``, ``room_alias_name``,
            ``name``, ``topic``, ``invite``, ``room_version``, ``creation_content``,
            ``initial_state``, ``power_level_content_override``, ``is_direct``.
        :returns: ``None``, :class:`Allow` or :class:`Reject` (or a Deferred of one).
        """


class IInviteChecker(Interface):
    """Sees invites sent by local users (including those of ``createRoom``)."""

    def check_invite(inviter, invitee, room_id):
        """Decide whether ``inviter`` may invite ``invitee`` into ``room_id``.

        :returns: ``None``, :class:`Allow` or :class:`Reject` (or a Deferred of one).
        """


class IResourceProvider(Interface):
    """Serves web resources of its own on the client listener."""

    def resources():
        """The resources to mount under the module's prefix (``/_mxref/<name>`` unless
        ``resource_prefix`` is configured).

        :returns: ``{relative path: twisted.web.resource.IResource}`` (not a Deferred), e.g.
            ``{"stats": StatsResource()}`` for ``/_mxref/<name>/stats``; ``""`` mounts at the
            prefix itself.
        """


#: Every hook interface with the hook methods whose failures ``on_failure`` governs.
HOOK_METHODS = {
    IEventChecker: ("check_event",),
    IEventListener: ("on_event_persisted",),
    IRegistrationChecker: ("check_registration",),
    ILoginChecker: ("check_login_allowed",),
    IPasswordProvider: ("check_login", "check_password"),
    IRoomCreationChecker: ("check_room_creation",),
    IInviteChecker: ("check_invite",),
}
