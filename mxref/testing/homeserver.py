"""Whole mxref homeservers inside one test process.

:func:`make_test_homeserver` builds a real :class:`~mxref.homeserver.HomeServer` (every service
and resource, a real SQLite database in a directory of the test's) from a small configuration,
with a fast password hasher. Tests, module authors and the in-memory federation network use it.
"""

import os

import yaml
from twisted.internet import defer
from twisted.internet.task import deferLater

from mxref.auth.passwords import PasswordHasher
from mxref.config import HomeServerConfig
from mxref.crypto.keys import write_new_signing_key
from mxref.homeserver import make_homeserver

#: Limits high enough that tests never hit them (tests of rate limiting configure their own).
UNLIMITED = {"per_second": 10000, "burst_count": 10000}


def test_config(data_dir, server_name="test.example", overrides=None):
    """A parsed configuration for a test homeserver keeping its files in ``data_dir``.

    :param overrides: top-level ``homeserver.yaml`` keys to set or replace.
    :returns: a :class:`~mxref.config.HomeServerConfig` (not a Deferred).
    """
    os.makedirs(data_dir, exist_ok=True)
    key_path = os.path.join(data_dir, "signing.key")
    if not os.path.exists(key_path):
        write_new_signing_key(key_path)
    data = {
        "server_name": server_name,
        "public_baseurl": "http://127.0.0.1:8008/",
        "listeners": [{"port": 8008, "type": "http", "bind_addresses": ["127.0.0.1"], "resources": [{"names": ["client"]}]}],
        "database": {"name": "sqlite3", "args": {"database": os.path.join(data_dir, "homeserver.db")}},
        "signing_key_path": key_path,
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "registration_shared_secret": "test-shared-secret",
        "rc_message": UNLIMITED,
        "rc_registration": UNLIMITED,
        "rc_login": {"address": UNLIMITED, "account": UNLIMITED, "failed_attempts": UNLIMITED},
        "federation_verify_certificates": False,
        "trusted_key_servers": [],
    }
    data.update(overrides or {})
    with open(os.path.join(data_dir, "homeserver.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f)
    return HomeServerConfig.from_dict(data, data_dir)


@defer.inlineCallbacks
def make_test_homeserver(testcase, reactor, server_name="test.example", overrides=None, data_dir=None, **kwargs):
    """Build a homeserver for a trial test; its database is closed at the test's cleanup.

    :param testcase: the running ``TestCase``.
    :param reactor: the reactor (the real one: the database uses its thread pool).
    :param data_dir: reuse a data directory (to restart a server on the same database).
    :param kwargs: passed to :class:`~mxref.homeserver.HomeServer` (e.g. ``remote_rooms``,
        ``federation_agent``). Without a ``federation_agent`` the server sits alone on an
        in-memory network: requests to other servers fail as unreachable, and no test ever
        touches real DNS or the network.
    :returns: Deferred firing with the :class:`~mxref.homeserver.HomeServer`.
    """
    from mxref.testing.network import FederationNetwork

    data_dir = data_dir or os.path.abspath(testcase.mktemp())
    config = test_config(data_dir, server_name, overrides)
    kwargs.setdefault("password_hasher", PasswordHasher.synchronous(rounds=4))
    kwargs.setdefault("federation_agent", FederationNetwork(reactor).agent_for(server_name))
    homeserver, database = yield make_homeserver(config, reactor, **kwargs)
    testcase.addCleanup(database.close)
    for service in homeserver.services:
        service.startService()
        testcase.addCleanup(service.stopService)
    homeserver.data_dir = data_dir
    homeserver.database = database
    return homeserver


@defer.inlineCallbacks
def make_federated_homeservers(testcase, reactor, server_names, overrides=None):
    """Several test homeservers federating over one in-memory network.

    :param server_names: the servers' names (e.g. ``["a.test", "b.test", "c.test"]``).
    :param overrides: ``homeserver.yaml`` keys for every server.
    :returns: Deferred firing with ``(network, {server_name: HomeServer})``.
    """
    from mxref.testing.network import FederationNetwork

    network = FederationNetwork(reactor)
    servers = {}
    for name in server_names:
        homeserver = yield make_test_homeserver(
            testcase, reactor, server_name=name, overrides=overrides, federation_agent=network.agent_for(name)
        )
        network.add_server(name, homeserver.resources)
        servers[name] = homeserver
    # Cleanups run last-added first: this one runs before any service stops, so that no
    # transaction is still in flight (and no request timer pending) when the test ends.
    testcase.addCleanup(settle_federation, reactor, servers.values())
    return network, servers


@defer.inlineCallbacks
def settle_federation(reactor, homeservers, timeout=10.0):
    """Wait until no homeserver's federation sender has a transaction in flight, twice in a row
    (an answered transaction can make the receiving server send in turn).

    :param homeservers: the :class:`~mxref.homeserver.HomeServer` objects.
    :param timeout: give up waiting after this many seconds.
    :returns: Deferred firing with ``None``.
    """
    senders = [h.federation_sender for h in homeservers]
    deadline = reactor.seconds() + timeout
    quiet_rounds = 0
    while quiet_rounds < 2 and reactor.seconds() < deadline:
        waits = [s.idle() for s in senders]
        busy = any(not d.called for d in waits)
        try:
            yield defer.gatherResults(waits).addTimeout(max(deadline - reactor.seconds(), 0.01), reactor)
        except defer.TimeoutError:
            return
        quiet_rounds = 0 if busy else quiet_rounds + 1
        yield deferLater(reactor, 0.01, lambda: None)
