"""The composition root: the one place where mxref's parts are built and connected.

Every part receives what it uses through its constructor (storage interfaces, services, a
clock, our signing key, configuration values); nothing looks anything up globally. Read this
file to see how a request travels: resource -> service -> storage, and how a persisted event
reaches sync (the notifier).
"""

import secrets

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.iweb import IAgent
from zope.interface import implementer

from mxref.auth.passwords import PasswordHasher
from mxref.auth.tokens import RequestAuthenticator
from mxref.client.account.resource import (
    AccountSecurityResource,
    DeviceResource,
    LoginResource,
    RegistrationResource,
    SharedSecretRegistrationResource,
)
from mxref.client.account.service import (
    AccountRegistrar,
    AccountSecurity,
    CredentialChecker,
    DeviceService,
    InteractiveAuthenticator,
    LoginService,
)
from mxref.client.account_data.resource import AccountDataResource
from mxref.client.account_data.service import AccountDataService
from mxref.client.filters.resource import FilterResource
from mxref.client.filters.service import FilterService
from mxref.client.directory.resource import DirectoryResource
from mxref.client.directory.service import RoomDirectory
from mxref.client.meta.resource import MetaResource
from mxref.client.presence.resource import PresenceResource
from mxref.client.presence.service import PresenceService
from mxref.client.presence.tracker import PresenceTracker
from mxref.client.profile.resource import ProfileResource
from mxref.client.profile.service import ProfileService
from mxref.client.relations.resource import RelationResource
from mxref.client.relations.service import RelationReader
from mxref.client.receipts.resource import ReceiptResource
from mxref.client.receipts.service import ReadReceipts, TypingRequests
from mxref.client.receipts.typing import TypingTracker
from mxref.client.rooms.resource import RoomReadingResource, RoomResource
from mxref.client.rooms.service import RoomActions, RoomReader
from mxref.client.sync.resource import SyncResource
from mxref.client.sync.service import SyncService
from mxref.client.visibility import EventVisibility
from mxref.crypto.keys import load_signing_key, old_verify_keys
from mxref.crypto.keyring import Keyring
from mxref.federation.acl import ServerAclChecker
from mxref.federation.backfill import RemoteHistory
from mxref.federation.receiver.edus import EduRouter, PresenceEduReceiver, ReceiptEduReceiver, TypingEduReceiver
from mxref.federation.receiver.membership import ResidentMembership
from mxref.federation.receiver.pipeline import PduReceiver
from mxref.federation.receiver.queries import FederationQueries
from mxref.federation.receiver.room_reads import FederationRoomReads
from mxref.federation.receiver.transactions import TransactionReceiver
from mxref.federation.transport.agent import MatrixFederationAgent
from mxref.federation.transport.client import FederationClient
from mxref.federation.transport.endpoints import (
    MembershipEndpoints,
    QueryEndpoints,
    RoomReadEndpoints,
    TransactionEndpoints,
)
from mxref.federation.transport.keys import ServerKeysResource
from mxref.federation.transport.server import FederationRequestAuthenticator
from mxref.http.resource import JsonResource
from mxref.modules.api import ModuleApi
from mxref.modules.hooks import ModuleHooks
from mxref.modules.loader import load_modules, resource_prefixes
from mxref.modules.passwords import ProviderCredentialChecker
from mxref.notifier import Notifier
from mxref.ratelimit import RateLimiter
from mxref.rooms.creator import EventCreator
from mxref.federation.remote_directory import RemoteDirectory
from mxref.federation.remote_profiles import RemoteProfiles
from mxref.federation.remote_rooms import RemoteRooms
from mxref.federation.sender.sender import FederationSender
from mxref.rooms.membership import MembershipUpdater
from mxref.rooms.persister import EventPersister
from mxref.rooms.room_creation import RoomCreator
from mxref.rooms.state import RoomStateReader
from mxref.storage.database import Database, apply_schema_txn, make_database, make_engine, schema_files
from mxref.storage.sql.store import make_store


def storage_config(database_config):
    """The Synapse-shaped ``{"name", "args"}`` dict the storage layer opens, from the parsed
    :class:`~mxref.config.database.DatabaseConfig`."""
    args = dict(database_config.connect_args)
    if database_config.name == "psycopg2":
        args.update(cp_min=database_config.cp_min, cp_max=database_config.cp_max)
    return {"name": database_config.name, "args": args}


def open_database_blocking(database_config, reactor):
    """Open the database and bring its schema up to date before the reactor runs.

    The schema is applied on a connection of its own, synchronously, so that nothing is served
    before the tables exist; the returned database's pool starts with the reactor.

    :param database_config: a ``{"name", "args"}`` dict (see :func:`storage_config`).
    :returns: a :class:`~mxref.storage.database.Database` (not a Deferred).
    """
    engine = make_engine(database_config)
    setup_pool = engine.make_pool(reactor)
    connection = setup_pool.connect()
    try:
        Database(engine, setup_pool).run_blocking(
            connection, "prepare_database", apply_schema_txn, schema_files(engine), int(reactor.seconds() * 1000)
        )
    finally:
        setup_pool.disconnect(connection)
    return Database(engine, engine.make_pool(reactor))


@implementer(IAgent)
class AgentOnFirstUse:
    """An ``IAgent`` built by ``build()`` when the first request is made: the federation agent's
    DNS resolver re-reads ``resolv.conf`` on a timer, which a server that never federates (or a
    test) should not start.

    :param build: a callable returning the real ``IAgent``.
    """

    def __init__(self, build):
        self._build = build
        self._agent = None

    def request(self, method, uri, headers=None, bodyProducer=None):
        """``IAgent.request``; returns a Deferred of the response."""
        if self._agent is None:
            self._agent = self._build()
        return self._agent.request(method, uri, headers, bodyProducer)


def _limiter(clock, setting):
    return RateLimiter(clock, setting.per_second, setting.burst_count)


class HomeServer:
    """One homeserver: its services and the HTTP resources the listeners serve.

    :param config: the :class:`~mxref.config.HomeServerConfig`.
    :param reactor: the reactor (clock, threads, network).
    :param store: the :class:`~mxref.storage.sql.store.SqlStore` (or any object with the same
        interface attributes).
    :param signing_key: our event and request signing key.
    :param password_hasher: a :class:`~mxref.auth.passwords.PasswordHasher`; a bcrypt one on the
        reactor's thread pool by default.
    :param rng: randomness for IDs and tokens (``secrets.SystemRandom()`` by default).
    :param remote_rooms: the :class:`~mxref.rooms.interfaces.IRemoteRooms` implementation.
    :param federation_agent: the ``IAgent`` for ``matrix-federation://`` URIs (tests pass an
        in-memory one); a :class:`~mxref.federation.transport.agent.MatrixFederationAgent` by
        default.

    :ivar resources: ``{name: {URL prefix: IResource}}`` for :mod:`mxref.listeners`.
    :ivar services: services to start before the listeners.
    """

    log = Logger()

    def __init__(self, config, reactor, store, signing_key, password_hasher=None, rng=None, remote_rooms=None,
                 federation_agent=None):
        self.config = config
        self.reactor = reactor
        self.store = store
        self.signing_key = signing_key
        self.server_name = config.server.server_name
        rng = rng or secrets.SystemRandom()
        limits = config.ratelimiting
        self.password_hasher = password_hasher or PasswordHasher(reactor, reactor.getThreadPool())
        # The modules' hooks: handed to the services now, filled once the modules are built
        # (at the end, as their API uses the services).
        self.module_hooks = ModuleHooks(reactor)

        # Room services.
        self.notifier = Notifier(reactor)
        self.state_reader = RoomStateReader(store.events, store.state)
        self.persister = EventPersister(store.events, self.state_reader, self.notifier)
        self.event_creator = EventCreator(
            store.events,
            store.rooms,
            self.state_reader,
            self.persister,
            self.server_name,
            signing_key,
            reactor,
            module_hooks=self.module_hooks,
        )
        # Federation: our client for other servers, their keys, and the receiving side.
        self.federation_agent = federation_agent or AgentOnFirstUse(
            lambda: MatrixFederationAgent(reactor, config.tls, config.federation)
        )
        self.federation_client = FederationClient(self.federation_agent, self.server_name, signing_key, reactor)
        self.keyring = Keyring(
            store.federation,
            self.federation_client,
            reactor,
            self.server_name,
            signing_key,
            trusted_key_servers=config.keys.trusted_key_servers,
            old_keys=old_verify_keys(config.keys),
        )
        self.federation_authenticator = FederationRequestAuthenticator(
            self.keyring, self.server_name, clock=reactor, federation_config=config.federation
        )
        self.server_acls = ServerAclChecker(store.events)
        self.pdu_receiver = PduReceiver(
            store.events,
            store.rooms,
            self.state_reader,
            self.persister,
            self.keyring,
            self.federation_client,
            self.server_acls,
            module_hooks=self.module_hooks,
        )
        self.remote_rooms = remote_rooms or RemoteRooms(
            store.events,
            store.rooms,
            self.persister,
            self.pdu_receiver,
            self.federation_client,
            self.keyring,
            self.notifier,
            self.server_name,
            signing_key,
            reactor,
        )
        self.membership = MembershipUpdater(
            store.events,
            store.rooms,
            store.accounts,
            self.event_creator,
            self.remote_rooms,
            self.server_name,
            module_hooks=self.module_hooks,
        )
        self.room_creator = RoomCreator(
            self.event_creator,
            self.membership,
            store.rooms,
            store.accounts,
            self.server_name,
            default_room_version=config.server.default_room_version,
            module_hooks=self.module_hooks,
        )
        self.visibility = EventVisibility(store.events, store.state, store.rooms)
        self.remote_history = RemoteHistory(
            store.rooms, self.federation_client, self.pdu_receiver, reactor, self.server_name
        )
        self.room_reader = RoomReader(
            store.events, store.rooms, store.state, self.visibility, reactor, remote_history=self.remote_history
        )
        self.relations = RelationReader(store.events, store.rooms, self.room_reader, self.visibility, reactor)
        self.directory = RoomDirectory(
            store.events,
            store.rooms,
            self.membership,
            self.server_name,
            remote_directory=RemoteDirectory(self.federation_client),
        )
        self.profiles = ProfileService(
            store.accounts, store.rooms, store.events, self.event_creator, self.server_name,
            remote_profiles=RemoteProfiles(self.federation_client),
        )
        self.typing = TypingTracker(reactor, self.notifier)
        self.presence_tracker = PresenceTracker(reactor, self.notifier, store.rooms)
        self.presence = PresenceService(self.presence_tracker, store.rooms)
        self.receipts = ReadReceipts(store.client_data, store.events, store.rooms, self.notifier, reactor)
        self.filters = FilterService(store.client_data)
        self.account_data = AccountDataService(store.client_data, self.notifier)
        self.sync = SyncService(
            store.events,
            store.rooms,
            store.client_data,
            self.visibility,
            self.event_creator,
            self.filters,
            self.notifier,
            reactor,
            typing=self.typing,
            presence=self.presence,
        )

        # Accounts.
        self.credentials = ProviderCredentialChecker(
            CredentialChecker(store.accounts, self.password_hasher, self.server_name), self.module_hooks
        )
        failed_logins = _limiter(reactor, limits.rc_login_failed_attempts)
        self.interactive_auth = InteractiveAuthenticator(
            self.credentials, reactor, rng, failed_attempts_limiter=failed_logins
        )
        self.login = LoginService(
            store.accounts,
            self.credentials,
            reactor,
            rng,
            address_limiter=_limiter(reactor, limits.rc_login_address),
            account_limiter=_limiter(reactor, limits.rc_login_account),
            failed_attempts_limiter=failed_logins,
            extra_login_types=self.module_hooks.login_types,
            module_hooks=self.module_hooks,
        )
        self.registrar = AccountRegistrar(
            store.accounts,
            self.password_hasher,
            self.login,
            self.interactive_auth,
            reactor,
            rng,
            self.server_name,
            config.registration,
            registration_limiter=_limiter(reactor, limits.rc_registration),
            module_hooks=self.module_hooks,
        )
        self.devices = DeviceService(store.accounts, self.interactive_auth)
        self.account_security = AccountSecurity(
            store.accounts,
            self.password_hasher,
            self.interactive_auth,
            deactivation_listeners=[self._leave_all_rooms],
        )
        self.authenticator = RequestAuthenticator(self.login.get_token_owner, reactor)
        self.message_limiter = _limiter(reactor, limits.rc_message)
        self.room_actions = RoomActions(
            self.event_creator, self.room_creator, self.membership, store.events, store.rooms, self.message_limiter
        )

        # Federation: sending (one queue per destination, catch-up from the stored stream).
        self.federation_sender = FederationSender(
            store.events,
            store.rooms,
            store.federation,
            store.client_data,
            self.federation_client,
            self.notifier,
            self.typing,
            reactor,
            self.server_name,
            presence=self.presence_tracker,
        )
        # Federation: receiving.
        self.edu_router = EduRouter()
        self.edu_router.register("m.typing", TypingEduReceiver(self.typing, store.rooms, self.server_acls).on_edu)
        self.edu_router.register(
            "m.presence", PresenceEduReceiver(self.presence_tracker, store.rooms, self.server_name).on_edu
        )
        self.edu_router.register(
            "m.receipt", ReceiptEduReceiver(store.client_data, store.rooms, self.notifier, self.server_acls).on_edu
        )
        self.transaction_receiver = TransactionReceiver(
            store.federation,
            store.rooms,
            self.pdu_receiver,
            self.edu_router,
            reactor,
            origin_seen=self.federation_sender.wake_destination,
        )
        self.federation_reads = FederationRoomReads(
            store.events,
            store.state,
            store.rooms,
            self.state_reader,
            self.visibility,
            self.server_acls,
            self.server_name,
            reactor,
        )
        self.resident_membership = ResidentMembership(
            store.events,
            store.rooms,
            store.accounts,
            self.event_creator,
            self.pdu_receiver,
            self.federation_reads,
            self.server_acls,
            self.notifier,
            self.server_name,
            signing_key,
            reactor,
            forward_event=self.federation_sender.send_on_behalf_of,
            module_hooks=self.module_hooks,
        )
        self.federation_queries = FederationQueries(
            store.rooms,
            store.accounts,
            self.directory.public_rooms,
            self.server_name,
            config.server.allow_public_rooms_over_federation,
        )

        self.client_resource = JsonResource()
        for endpoints in self._client_endpoints():
            endpoints.register_routes(self.client_resource)

        self.federation_resource = JsonResource()
        for endpoints in self._federation_endpoints():
            endpoints.register_routes(self.federation_resource)

        self.resources = {
            "client": {
                "/_matrix/client": self.client_resource,
                "/_synapse/admin": self.client_resource,
                "/.well-known/matrix/client": self.client_resource,
            },
            "federation": {
                "/_matrix/federation": self.federation_resource,
                "/_matrix/key": self.federation_resource,
            },
            "keys": {"/_matrix/key": self.federation_resource},
        }
        self.services = [self.federation_sender, self.presence_tracker, self.typing]

        # Third-party modules (mxref.modules), in configuration order; a bad one stops start-up
        # with a ConfigError. Their resources go on the client listener.
        self.modules = load_modules(config.modules, self._module_api)
        self.module_hooks.install(self.modules)
        self.module_hooks.follow_persisted_events(self.notifier, store.events)
        self.resources["client"].update(resource_prefixes(self.modules))

    def _module_api(self, module_name):
        """The :class:`~mxref.modules.api.ModuleApi` one module is given."""
        return ModuleApi(
            module_name,
            self.server_name,
            self.reactor,
            self.event_creator,
            self.store.events,
            self.registrar,
            self.profiles,
        )

    def _client_endpoints(self):
        """Every Client-Server API endpoint class, wired to its services."""
        return [
            LoginResource(self.login, self.authenticator),
            RegistrationResource(self.registrar),
            DeviceResource(self.devices, self.authenticator),
            AccountSecurityResource(self.account_security, self.authenticator),
            SharedSecretRegistrationResource(self.registrar),
            RoomResource(self.room_actions, self.authenticator),
            RoomReadingResource(self.room_reader, self.authenticator),
            RelationResource(self.relations, self.authenticator),
            DirectoryResource(
                self.directory,
                self.authenticator,
                self.server_name,
                self.config.server.allow_public_rooms_without_auth,
            ),
            ProfileResource(self.profiles, self.authenticator),
            ReceiptResource(self.receipts, TypingRequests(self.typing, self.store.rooms), self.authenticator),
            FilterResource(self.filters, self.authenticator),
            AccountDataResource(self.account_data, self.authenticator),
            SyncResource(self.sync, self.authenticator),
            PresenceResource(self.presence, self.authenticator),
            MetaResource(
                self.authenticator,
                public_baseurl=self.config.server.public_baseurl,
                default_room_version=self.config.server.default_room_version,
            ),
        ]

    def _federation_endpoints(self):
        """Every Server-Server API endpoint class."""
        return [
            ServerKeysResource(
                self.server_name,
                self.signing_key,
                old_verify_keys(self.config.keys),
                self.reactor,
                self.config.keys.key_refresh_interval_ms,
            ),
            TransactionEndpoints(self.federation_authenticator, self.transaction_receiver),
            RoomReadEndpoints(self.federation_authenticator, self.federation_reads),
            MembershipEndpoints(self.federation_authenticator, self.resident_membership),
            QueryEndpoints(self.federation_authenticator, self.federation_queries),
        ]

    @defer.inlineCallbacks
    def _leave_all_rooms(self, user_id, erase):
        """On deactivation, the user leaves every room they are joined to or invited to."""
        memberships = yield self.store.rooms.get_rooms_for_user(user_id, memberships=("join", "invite", "knock"))
        for membership in memberships:
            try:
                yield self.membership.leave(user_id, membership.room_id)
            except Exception:
                self.log.failure("could not leave {room_id} for {user_id}", room_id=membership.room_id, user_id=user_id)


def build_homeserver(config, reactor):
    """Build the homeserver for ``twistd``: open the database (bringing its schema up to date
    before anything is served), load the signing key, compose everything.

    :returns: a :class:`HomeServer` (not a Deferred).
    """
    database = open_database_blocking(storage_config(config.database), reactor)
    store = make_store(database)
    return HomeServer(config, reactor, store, load_signing_key(config.keys.signing_key_path))


@defer.inlineCallbacks
def make_homeserver(config, reactor, **kwargs):
    """Build a homeserver once the reactor runs (tests): like :func:`build_homeserver`, but the
    database is opened asynchronously.

    :param kwargs: passed to :class:`HomeServer`.
    :returns: Deferred firing with ``(homeserver, database)``; close the database when done.
    """
    database = yield make_database(storage_config(config.database), reactor)
    store = make_store(database)
    return HomeServer(config, reactor, store, load_signing_key(config.keys.signing_key_path), **kwargs), database
