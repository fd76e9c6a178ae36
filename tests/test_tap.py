"""Tests for ``twistd mxref``: options, first run, later runs, --config and --server-name."""

import io
import os
import stat

from twisted.application.service import IService, Service
from twisted.internet.testing import MemoryReactor
from twisted.python import usage
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site

from mxref.config import ConfigError, HomeServerConfig, generate_config
from mxref.crypto.keys import load_signing_key
from mxref.listeners import ListenerService
from mxref.tap import Options, PidFileService, build_service, makeService


class FakeHomeServer:
    """A stand-in composition root: records the config it was built with."""

    def __init__(self, config, reactor):
        self.config = config
        self.reactor = reactor
        self.resources = {
            "client": {"/_matrix/client": Resource(), "/_synapse/admin": Resource()},
            "federation": {"/_matrix/federation": Resource(), "/_matrix/key": Resource()},
        }
        self.services = [Service()]


def plain_site(root, listener, reactor):
    return Site(root)


class TapTests(unittest.TestCase):
    """makeService prepares the data directory and assembles the services."""

    def setUp(self):
        self.workdir = os.path.abspath(self.mktemp())
        os.makedirs(self.workdir)
        self.built = []
        self.reactor = MemoryReactor()

    def build(self, config, reactor):
        homeserver = FakeHomeServer(config, reactor)
        self.built.append(homeserver)
        return homeserver

    def options(self, *argv):
        options = Options()
        options.parseOptions(list(argv))
        return options

    def run_tap(self, *argv):
        stdout = io.StringIO()
        service = makeService(
            self.options(*argv),
            build=self.build,
            reactor=self.reactor,
            stdout=stdout,
            site_factory=plain_site,
        )
        return service, stdout.getvalue()

    def test_first_run_creates_data_dir(self):
        """The first run creates the data directory with homeserver.yaml, a signing key and a TLS certificate."""
        data_dir = os.path.join(self.workdir, "data")
        service, out = self.run_tap("--data-dir", data_dir)
        self.assertEqual(
            sorted(os.listdir(data_dir)),
            sorted(
                [
                    "homeserver.yaml",
                    "localhost.signing.key",
                    "localhost.tls.crt",
                    "localhost.tls.key",
                ]
            ),
        )
        self.assertEqual(stat.S_IMODE(os.stat(data_dir).st_mode), 0o700)
        self.assertEqual(
            stat.S_IMODE(os.stat(os.path.join(data_dir, "homeserver.yaml")).st_mode), 0o600
        )
        config = self.built[0].config
        self.assertIsInstance(config, HomeServerConfig)
        self.assertEqual(config.server_name, "localhost")
        self.assertEqual(config.database.sqlite_path, os.path.join(data_dir, "homeserver.db"))
        self.assertIs(self.built[0].reactor, self.reactor)

    def test_first_run_message(self):
        """The first run says where everything is, where it listens and how to create a user."""
        data_dir = os.path.join(self.workdir, "data")
        _, out = self.run_tap("--data-dir", data_dir)
        self.assertIn(f"created the data directory {data_dir}", out)
        self.assertIn(os.path.join(data_dir, "homeserver.yaml"), out)
        self.assertIn("localhost.signing.key", out)
        self.assertIn("self-signed", out)
        self.assertIn("http://127.0.0.1:8008 (client)", out)
        self.assertIn("https://127.0.0.1:8448 (federation)", out)
        self.assertIn(f"mxref-register -c {os.path.join(data_dir, 'homeserver.yaml')}", out)

    def test_services(self):
        """The homeserver's services come first, then one listener per socket: 8008 plain and 8448 TLS."""
        service, _ = self.run_tap("--data-dir", os.path.join(self.workdir, "data"))
        children = list(service)
        self.assertIs(children[0], self.built[0].services[0])
        listeners = children[1:]
        self.assertEqual([type(child) for child in listeners], [ListenerService, ListenerService])
        for child in children:
            IService(child)
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(
            [(port, interface) for port, _, _, interface in self.reactor.tcpServers],
            [(8008, "127.0.0.1"), (8448, "127.0.0.1")],
        )
        self.assertIsInstance(self.reactor.tcpServers[0][1], Site)
        self.assertIsInstance(self.reactor.tcpServers[1][1].wrappedFactory, Site)

    def test_second_run_reuses(self):
        """A second run keeps the configuration, signing key and certificate of the first."""
        data_dir = os.path.join(self.workdir, "data")
        self.run_tap("--data-dir", data_dir)
        files = {}
        for name in os.listdir(data_dir):
            with open(os.path.join(data_dir, name), "rb") as f:
                files[name] = f.read()
        _, out = self.run_tap("--data-dir", data_dir)
        for name, content in files.items():
            with open(os.path.join(data_dir, name), "rb") as f:
                self.assertEqual(f.read(), content, name)
        self.assertNotIn("created the data directory", out)
        self.assertNotIn("(new", out)
        self.assertEqual(self.built[0].config, self.built[1].config)

    def test_missing_key_regenerated(self):
        """A deleted signing key is generated again on the next start."""
        data_dir = os.path.join(self.workdir, "data")
        self.run_tap("--data-dir", data_dir)
        key_path = os.path.join(data_dir, "localhost.signing.key")
        old = load_signing_key(key_path)
        os.remove(key_path)
        _, out = self.run_tap("--data-dir", data_dir)
        self.assertNotEqual(bytes(load_signing_key(key_path)), bytes(old))
        self.assertIn("(new)", out)

    def test_server_name(self):
        """--server-name names a new data directory's server and its files."""
        data_dir = os.path.join(self.workdir, "data")
        self.run_tap("--data-dir", data_dir, "--server-name", "example.org:8448")
        self.assertEqual(self.built[0].config.server_name, "example.org:8448")
        self.assertTrue(os.path.exists(os.path.join(data_dir, "example.org:8448.signing.key")))

    def test_server_name_cannot_change(self):
        """--server-name differing from an existing data directory's name is refused, naming server_name."""
        data_dir = os.path.join(self.workdir, "data")
        self.run_tap("--data-dir", data_dir, "--server-name", "a.example")
        self.run_tap("--data-dir", data_dir, "--server-name", "a.example")
        error = self.assertRaises(
            SystemExit, self.run_tap, "--data-dir", data_dir, "--server-name", "b.example"
        )
        self.assertIn("server_name", str(error))

    def test_default_data_dir_is_relative_to_cwd(self):
        """Without --data-dir, ./mxref-data is used."""
        cwd = os.getcwd()
        os.chdir(self.workdir)
        self.addCleanup(os.chdir, cwd)
        self.run_tap()
        self.assertTrue(os.path.isfile(os.path.join(self.workdir, "mxref-data", "homeserver.yaml")))

    def test_config_file(self):
        """--config runs from an existing file, with relative paths taken from its directory."""
        config_dir = os.path.join(self.workdir, "etc")
        os.makedirs(config_dir)
        path = os.path.join(config_dir, "my.yaml")
        with open(path, "w") as f:
            f.write(
                "server_name: example.com\n"
                "signing_key_path: keys.key\n"
                "listeners:\n"
                "  - port: 8080\n"
                "    bind_addresses: ['::1']\n"
                "    resources: [{names: [client, federation]}]\n"
            )
        service, out = self.run_tap("--config", path)
        self.assertEqual(self.built[0].config.server_name, "example.com")
        self.assertTrue(os.path.isfile(os.path.join(config_dir, "keys.key")))
        self.assertFalse(os.path.exists(os.path.join(self.workdir, "mxref-data")))
        self.assertIn("http://[::1]:8080 (client, federation)", out)
        self.assertEqual(len(list(service)), 2)

    def test_generated_config_with_config_option(self):
        """A generated file moved elsewhere runs with --config."""
        path = os.path.join(self.workdir, "homeserver.yaml")
        with open(path, "w") as f:
            f.write(generate_config("example.net", self.workdir))
        self.run_tap("--config", path)
        self.assertTrue(os.path.isfile(os.path.join(self.workdir, "example.net.tls.crt")))

    def test_invalid_config_names_key(self):
        """An invalid value stops start-up with one line naming the key."""
        path = os.path.join(self.workdir, "bad.yaml")
        with open(path, "w") as f:
            f.write("server_name: x\nlisteners: [{port: 99999, resources: [{names: [client]}]}]\n")
        error = self.assertRaises(SystemExit, self.run_tap, "--config", path)
        self.assertIn("listeners[0].port", str(error))
        self.assertEqual(self.built, [])

    def test_unknown_resource_name(self):
        """A listener naming a resource the homeserver lacks is refused, naming the listener."""
        path = os.path.join(self.workdir, "hs.yaml")
        with open(path, "w") as f:
            f.write(
                "server_name: x\nlisteners: [{port: 1, resources: [{names: [client, media]}]}]\n"
            )
        error = self.assertRaises(SystemExit, self.run_tap, "--config", path)
        self.assertIn("listeners[0].resources[0].names", str(error))

    def test_build_service_raises_config_error(self):
        """build_service itself raises ConfigError for callers that want the key."""
        path = os.path.join(self.workdir, "bad.yaml")
        with open(path, "w") as f:
            f.write(
                "server_name: 'bad name'\nlisteners: [{port: 1, resources: [{names: [client]}]}]\n"
            )
        options = self.options("--config", path)
        error = self.assertRaises(
            ConfigError, build_service, options, self.build, self.reactor, io.StringIO(), plain_site
        )
        self.assertEqual(error.key, "server_name")

    def test_warnings_shown(self):
        """Unknown keys are listed in the start-up message."""
        path = os.path.join(self.workdir, "hs.yaml")
        with open(path, "w") as f:
            f.write(
                "server_name: x\nfrobnicate: 1\nlisteners: [{port: 1, resources: [{names: [client]}]}]\n"
            )
        _, out = self.run_tap("--config", path)
        self.assertIn("frobnicate: is not an mxref option", out)

    def test_pid_file(self):
        """pid_file is written while running and removed on stop."""
        path = os.path.join(self.workdir, "hs.yaml")
        with open(path, "w") as f:
            f.write(
                "server_name: x\npid_file: mxref.pid\nlisteners: [{port: 1, resources: [{names: [client]}]}]\n"
            )
        service, _ = self.run_tap("--config", path)
        (pid_service,) = [child for child in service if isinstance(child, PidFileService)]
        pid_service.startService()
        with open(os.path.join(self.workdir, "mxref.pid")) as f:
            self.assertEqual(int(f.read()), os.getpid())
        pid_service.stopService()
        self.assertFalse(os.path.exists(os.path.join(self.workdir, "mxref.pid")))


class OptionsTests(unittest.TestCase):
    """Command-line checks."""

    def test_defaults(self):
        """Without options the data directory is ./mxref-data and no config file is named."""
        options = Options()
        options.parseOptions([])
        self.assertEqual(options["data-dir"], "mxref-data")
        self.assertIsNone(options["config"])
        self.assertIsNone(options["server-name"])

    def test_missing_config_file(self):
        """--config with a file that does not exist is a usage error."""
        self.assertRaises(
            usage.UsageError, Options().parseOptions, ["--config", "/nonexistent/hs.yaml"]
        )

    def test_server_name_with_config(self):
        """--server-name cannot be combined with --config."""
        path = self.mktemp()
        open(path, "w").close()
        self.assertRaises(
            usage.UsageError, Options().parseOptions, ["--config", path, "--server-name", "a"]
        )

    def test_bad_server_name(self):
        """An invalid --server-name is a usage error."""
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--server-name", "not valid"])


class DefaultSiteTests(unittest.TestCase):
    """Without a site factory, listeners use mxref's MatrixSite."""

    def test_matrix_site_with_x_forwarded(self):
        """Each listener gets a MatrixSite that trusts X-Forwarded-For only when x_forwarded is set."""
        from mxref.http.site import MatrixSite

        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        path = os.path.join(workdir, "hs.yaml")
        with open(path, "w") as f:
            f.write(
                "server_name: x\nmax_upload_size: 200M\nlisteners:\n"
                "  - {port: 1, bind_addresses: ['127.0.0.1'], x_forwarded: true, resources: [{names: [client]}]}\n"
                "  - {port: 2, bind_addresses: ['127.0.0.1'], resources: [{names: [client]}]}\n"
            )
        options = Options()
        options.parseOptions(["--config", path])
        reactor = MemoryReactor()
        service = makeService(options, build=FakeHomeServer, reactor=reactor, stdout=io.StringIO())
        service.startService()
        self.addCleanup(service.stopService)
        sites = [factory for _, factory, _, _ in reactor.tcpServers]
        self.assertEqual([type(site) for site in sites], [MatrixSite, MatrixSite])
        self.assertEqual([site.trust_x_forwarded_for for site in sites], [True, False])
        self.assertEqual(sites[0].max_request_body_size, 200 * 1024 * 1024)


class PluginTests(unittest.TestCase):
    """twistd finds the mxref plugin."""

    def test_plugin_discovered(self):
        """The twisted.plugins drop-in offers 'mxref', built by mxref.tap."""
        from twisted.application.service import IServiceMaker
        from twisted.plugin import getPlugins

        makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
        self.assertIn("mxref", makers)
        self.assertIs(makers["mxref"].options, Options)


class LogConfigTests(unittest.TestCase):
    """log_config routes Twisted's log into Python logging."""

    def test_log_config_applied(self):
        """With log_config, Twisted log events reach the configured standard-library handler while running."""
        import logging

        from twisted.logger import Logger

        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        log_path = os.path.join(workdir, "mxref.log")
        with open(os.path.join(workdir, "log.yaml"), "w") as f:
            f.write(
                "version: 1\ndisable_existing_loggers: false\n"
                f"handlers: {{file: {{class: logging.FileHandler, filename: '{log_path}'}}}}\n"
                "loggers: {mxref: {handlers: [file], level: INFO, propagate: false}}\n"
            )
        logger = logging.getLogger("mxref")
        self.addCleanup(
            lambda: [logger.removeHandler(h) or h.close() for h in list(logger.handlers)]
        )
        path = os.path.join(workdir, "hs.yaml")
        with open(path, "w") as f:
            f.write(
                "server_name: x\nlog_config: log.yaml\nlisteners: [{port: 1, resources: [{names: [client]}]}]\n"
            )
        options = Options()
        options.parseOptions(["--config", path])
        service = makeService(
            options,
            build=FakeHomeServer,
            reactor=MemoryReactor(),
            stdout=io.StringIO(),
            site_factory=plain_site,
        )
        service.startService()
        Logger(namespace="test").info("hello {who}", who="operator")
        service.stopService()
        Logger(namespace="test").info("after stop")
        for handler in logger.handlers:
            handler.flush()
        with open(log_path) as f:
            text = f.read()
        self.assertIn("hello operator", text)
        self.assertNotIn("after stop", text)

    def test_bad_log_config(self):
        """An unusable log_config file stops start-up naming log_config."""
        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        with open(os.path.join(workdir, "log.yaml"), "w") as f:
            f.write("version: 99\n")
        path = os.path.join(workdir, "hs.yaml")
        with open(path, "w") as f:
            f.write(
                "server_name: x\nlog_config: log.yaml\nlisteners: [{port: 1, resources: [{names: [client]}]}]\n"
            )
        options = Options()
        options.parseOptions(["--config", path])
        error = self.assertRaises(
            SystemExit,
            makeService,
            options,
            build=FakeHomeServer,
            reactor=MemoryReactor(),
            stdout=io.StringIO(),
            site_factory=plain_site,
        )
        self.assertIn("log_config", str(error))
