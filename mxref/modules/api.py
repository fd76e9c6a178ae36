"""The narrow facade a module is given instead of the server's internals: send events, read
room state, register users, read profiles, a clock, a logger and the server's name.

The composition root (:class:`mxref.homeserver.HomeServer`) builds one :class:`ModuleApi` per
module. Everything a module does through it goes through the same services (and the same
checks, including other modules' hooks) as a client's request would.
"""

from twisted.internet import defer
from twisted.logger import Logger

from mxref.rooms.state import with_event_id


class ModuleApi:
    """What a module may do.

    :param module_name: the module's name (its logger's namespace is ``mxref.modules.<name>``).
    :param server_name: our server name.
    :param clock: an ``IReactorTime``.
    :param event_creator: a :class:`~mxref.rooms.creator.EventCreator`.
    :param events: an :class:`~mxref.storage.interfaces.IEventStore` (room state).
    :param registrar: an :class:`~mxref.client.account.service.AccountRegistrar`.
    :param profiles: a :class:`~mxref.client.profile.service.ProfileService`.

    :ivar server_name: our server name.
    :ivar clock: an ``IReactorTime`` (``seconds()``, ``callLater``): use it, never the global
        reactor.
    :ivar log: a ``twisted.logger.Logger`` namespaced ``mxref.modules.<name>``.
    """

    def __init__(self, module_name, server_name, clock, event_creator, events, registrar, profiles):
        self.module_name = module_name
        self.server_name = server_name
        self.clock = clock
        self.log = Logger(namespace=f"mxref.modules.{module_name}")
        self._event_creator = event_creator
        self._events = events
        self._registrar = registrar
        self._profiles = profiles

    @defer.inlineCallbacks
    def send_event(self, user_id, room_id, event_type, content, state_key=None):
        """Send an event into a room as local user ``user_id`` (who must be allowed to, by
        the room's authorization rules and by the modules' event checks).

        :param state_key: ``None`` for a message event.
        :returns: Deferred firing with the new event's ID.
        :raises MatrixError: (through the Deferred) as a client sending it would get.
        """
        event_id, _ = yield self._event_creator.send_event(
            room_id, user_id, event_type, content, state_key=state_key
        )
        return event_id

    @defer.inlineCallbacks
    def get_room_state(self, room_id, types=None):
        """A room's current state.

        :param types: ``[(type, state_key), ...]`` to read only those; ``None`` for all.
        :returns: Deferred firing with ``{(type, state_key): event dict}`` (events with
            ``event_id``); empty for a room this server does not know.
        """
        wanted = None if types is None else [tuple(key) for key in types]
        state = yield self._events.get_current_state(room_id, types=wanted)
        return {key: with_event_id(stored) for key, stored in state.items()}

    def register_user(self, localpart, password=None, admin=False):
        """Create a local account (registration policy and checks are not applied).

        :param password: its password, or ``None`` for an account that cannot log in with one.
        :returns: Deferred firing with the new user ID.
        :raises MatrixError: (through the Deferred) 400 ``M_USER_IN_USE`` or
            ``M_INVALID_USERNAME``.
        """
        return defer.ensureDeferred(self._registrar.register_user(localpart, password, admin=admin))

    def get_profile(self, user_id):
        """A user's profile fields.

        :returns: Deferred firing with a dict (``displayname``, ``avatar_url`` when set).
        :raises MatrixError: (through the Deferred) 404 ``M_NOT_FOUND`` for an unknown user.
        """
        return defer.ensureDeferred(self._profiles.get_profile(user_id))
