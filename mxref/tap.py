"""``twistd mxref``: command-line options, first-run set-up of the data directory, and the service tree.

``twistd -n mxref`` on a fresh machine creates ``./mxref-data/`` holding a
commented ``homeserver.yaml``, a signing key and a self-signed TLS
certificate, then serves the Client-Server API on ``http://127.0.0.1:8008``
and federation on port 8448 with TLS. Later runs reuse the directory.
``--config FILE`` runs from an existing configuration instead.

The homeserver itself is assembled by the composition root,
``mxref.homeserver.build_homeserver(config, reactor)``, which must return an
object shaped like :class:`ComposedHomeServer`. This module adds what
surrounds it: the files, the listeners and the messages to the operator.
"""

import logging.config
import os
import sys
from typing import Mapping, Protocol, Sequence

import yaml
from twisted.application.service import IService, MultiService, Service
from twisted.logger import STDLibLogObserver, globalLogPublisher
from twisted.python import usage

from mxref.config import ConfigError, generate_config, load_config
from mxref.config.server import split_server_name
from mxref.crypto.keys import key_id, load_or_generate_signing_key
from mxref.crypto.tls import ensure_certificate, server_tls_options
from mxref.listeners import build_listener_services

DEFAULT_DATA_DIR = "mxref-data"
DEFAULT_SERVER_NAME = "localhost"
CONFIG_FILE_NAME = "homeserver.yaml"


class ComposedHomeServer(Protocol):
    """What the composition root returns.

    :ivar resources: ``{resource name: {URL path prefix: IResource}}``, e.g.
        ``{"client": {"/_matrix/client": ...}, "federation": {"/_matrix/federation": ...,
        "/_matrix/key": ...}, "keys": {"/_matrix/key": ...}}``; listeners serve
        these by name (see :mod:`mxref.listeners`).
    :ivar services: services to run for the life of the process (database pool,
        federation sender, ...), started in order before the listeners.
    """

    resources: Mapping[str, Mapping[str, object]]
    services: Sequence[IService]


class Options(usage.Options):
    """Options of ``twistd mxref``."""

    synopsis = "[--data-dir DIR] [--server-name NAME] | [--config FILE]"
    longdesc = (
        "Run the mxref Matrix homeserver. Without --config, the data directory "
        "(default ./mxref-data) is created on first run with a commented homeserver.yaml, "
        "a signing key and a self-signed TLS certificate, and reused afterwards."
    )
    optParameters = [
        ["config", "c", None, "Run from this homeserver.yaml instead of the data directory's."],
        ["data-dir", None, DEFAULT_DATA_DIR, "The data directory, created on first run."],
        [
            "server-name",
            None,
            None,
            f"The server name for a new data directory (default: {DEFAULT_SERVER_NAME}). "
            "It becomes part of every user ID and cannot be changed later.",
        ],
    ]

    def postOptions(self):
        """Check the options fit together."""
        if self["config"] is not None:
            if self["server-name"] is not None:
                raise usage.UsageError(
                    "--server-name names a new data directory; with --config the "
                    "server name is the file's server_name"
                )
            if not os.path.isfile(self["config"]):
                raise usage.UsageError(
                    f"no configuration file at {self['config']} (run without --config "
                    "to create a data directory with a new one)"
                )
        if self["server-name"] is not None:
            try:
                split_server_name(self["server-name"])
            except ValueError as e:
                raise usage.UsageError(
                    f"--server-name {self['server-name']!r} is not a valid server name: {e}"
                )


class PidFileService(Service):
    """Writes the process ID to ``pid_file`` while running and removes it on stop."""

    def __init__(self, path: str):
        self.path = path

    def startService(self):
        """Write the pid file."""
        Service.startService(self)
        with open(self.path, "w", encoding="ascii") as f:
            f.write(f"{os.getpid()}\n")

    def stopService(self):
        """Remove the pid file."""
        Service.stopService(self)
        if os.path.exists(self.path):
            os.remove(self.path)


def create_data_dir(data_dir: str, server_name: str) -> str:
    """Create ``data_dir`` (if needed) with a new ``homeserver.yaml``; returns the config file's path.

    The directory and the file are readable by the owner only, since the file
    holds the registration shared secret.
    """
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    config_path = os.path.join(data_dir, CONFIG_FILE_NAME)
    text = generate_config(server_name, data_dir)
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return config_path


def _listener_urls(config) -> list:
    """``(resource names, URL)`` for each listening socket, for the start-up message."""
    urls = []
    for listener in config.listeners:
        names = ", ".join(listener.resource_names)
        scheme = "https" if listener.tls else "http"
        if listener.endpoint is not None:
            urls.append((names, f"{scheme} on {listener.endpoint}"))
            continue
        for address in listener.bind_addresses:
            host = f"[{address}]" if ":" in address else address
            urls.append((names, f"{scheme}://{host}:{listener.port}"))
    return urls


def _client_url(config):
    for listener in config.listeners:
        if "client" in listener.resource_names and listener.endpoint is None:
            address = listener.bind_addresses[0]
            host = "localhost" if address in ("::", "0.0.0.0") else address
            host = f"[{host}]" if ":" in host else host
            return f"{'https' if listener.tls else 'http'}://{host}:{listener.port}"
    return None


def _apply_log_config(path: str) -> None:
    """Configure Python logging from a Synapse-style ``log_config`` file (``logging.config.dictConfig``)."""
    try:
        with open(path, encoding="utf-8") as f:
            logging.config.dictConfig(yaml.safe_load(f))
    except (OSError, yaml.YAMLError, ValueError, TypeError, AttributeError) as e:
        raise ConfigError("log_config", f"cannot use {path}: {e}")


class StdlibLogService(Service):
    """While running, sends Twisted's log events to the standard-library logger ``mxref``."""

    def __init__(self):
        self.observer = STDLibLogObserver(name="mxref")

    def startService(self):
        """Start forwarding."""
        Service.startService(self)
        globalLogPublisher.addObserver(self.observer)

    def stopService(self):
        """Stop forwarding."""
        Service.stopService(self)
        globalLogPublisher.removeObserver(self.observer)


def _default_build(config, reactor):
    from mxref.homeserver import build_homeserver

    return build_homeserver(config, reactor)


def _default_site_factory(config):
    """MatrixSite per listener: X-Forwarded-For per ``x_forwarded``, bodies up to the upload limit.

    The Site-wide body cap is the larger of ``max_upload_size`` and the JSON
    endpoints' own cap, so that uploads up to the configured size get through
    while each JSON endpoint still applies its smaller limit.
    """
    from mxref.http.resource import DEFAULT_MAX_BODY_SIZE
    from mxref.http.site import MatrixSite

    max_body = max(config.media.max_upload_size, DEFAULT_MAX_BODY_SIZE)

    def site_factory(root, listener, reactor):
        return MatrixSite(
            root,
            reactor,
            max_request_body_size=max_body,
            trust_x_forwarded_for=listener.x_forwarded,
        )

    return site_factory


def _database_description(database) -> str:
    if database.sqlite_path:
        return database.sqlite_path
    args = database.connect_args
    return f"PostgreSQL database {args.get('dbname') or args.get('database') or '(default)'}"


def _startup_message(
    config, config_path, created, signing_key, key_created, tls_options, certificate_created
) -> str:
    """What the operator is told at start-up: files, sockets, warnings, how to create a user."""

    def new(flag):
        return " (new)" if flag else ""

    lines = []
    if created:
        lines.append(
            f"mxref: created the data directory {os.path.dirname(config_path)} "
            f"for the server name {config.server_name!r}."
        )
    lines += [
        f"mxref: server {config.server_name}",
        f"  configuration    {config_path}{new(created)}",
        f"  signing key      {config.keys.signing_key_path} ({key_id(signing_key)})"
        f"{new(key_created)}",
    ]
    if tls_options is not None:
        lines.append(
            f"  TLS certificate  {config.tls.tls_certificate_path}"
            f"{' (new, self-signed)' if certificate_created else ''}"
        )
    lines.append(f"  database         {_database_description(config.database)}")
    lines.append(f"  media store      {config.media.media_store_path}")
    for names, url in _listener_urls(config):
        lines.append(f"  listening        {url} ({names})")
    for warning in config.warnings:
        lines.append(f"  warning          {warning}")
    client_url = _client_url(config)
    if config.registration.registration_shared_secret and client_url:
        lines.append("Create a user with:")
        lines.append(f"  mxref-register -c {config_path} -u USER --admin {client_url}")
    return "\n".join(lines) + "\n"


def build_service(
    options, build=None, reactor=None, stdout=None, site_factory=None
) -> MultiService:
    """Prepare the files, load the configuration and assemble the service tree.

    :param options: parsed :class:`Options`.
    :param build: the composition root, ``build(config, reactor) -> ComposedHomeServer``;
        ``mxref.homeserver.build_homeserver`` by default.
    :param reactor: the reactor (the global one by default: this is the program's edge).
    :param stdout: where the start-up message goes (``sys.stdout`` by default).
    :param site_factory: ``site_factory(root, listener, reactor) -> Site``; mxref's
        :class:`mxref.http.site.MatrixSite` by default.
    :returns: a ``MultiService``: the homeserver's services, then one listener service per socket.
    :raises ConfigError: naming the offending key.
    """
    if reactor is None:
        from twisted.internet import reactor
    stdout = stdout or sys.stdout
    build = build or _default_build

    created = False
    if options["config"] is not None:
        config_path = os.path.abspath(options["config"])
    else:
        data_dir = os.path.abspath(options["data-dir"])
        config_path = os.path.join(data_dir, CONFIG_FILE_NAME)
        if not os.path.exists(config_path):
            create_data_dir(data_dir, options["server-name"] or DEFAULT_SERVER_NAME)
            created = True

    config = load_config(config_path)
    if options["server-name"] is not None and options["server-name"] != config.server_name:
        raise ConfigError(
            "server_name",
            f"{config_path} is for {config.server_name!r}, not {options['server-name']!r}; the server name "
            "of an existing data directory cannot be changed (use another --data-dir)",
        )
    if config.server.log_config:
        _apply_log_config(config.server.log_config)

    signing_key, key_created = load_or_generate_signing_key(config.keys.signing_key_path)
    tls_options = None
    certificate_created = False
    if any(listener.tls for listener in config.listeners):
        certificate_created = ensure_certificate(
            config.server_name, config.tls.tls_certificate_path, config.tls.tls_private_key_path
        )
        tls_options = server_tls_options(config.tls)

    homeserver = build(config, reactor)
    site_factory = site_factory or _default_site_factory(config)
    listener_services = build_listener_services(
        config.listeners, homeserver.resources, reactor, tls_options, site_factory
    )

    top = MultiService()
    if config.server.log_config:
        StdlibLogService().setServiceParent(top)
    for child in homeserver.services:
        child.setServiceParent(top)
    if config.server.pid_file:
        PidFileService(config.server.pid_file).setServiceParent(top)
    for child in listener_services:
        child.setServiceParent(top)

    message = _startup_message(
        config, config_path, created, signing_key, key_created, tls_options, certificate_created
    )
    stdout.write(message)
    stdout.flush()
    return top


def makeService(options, build=None, reactor=None, stdout=None, site_factory=None) -> MultiService:
    """The twistd entry point: :func:`build_service`, with configuration errors shown as one clear line.

    :raises SystemExit: with ``"mxref: configuration error: <key>: <message>"`` for a bad configuration.
    """
    try:
        return build_service(options, build, reactor, stdout, site_factory)
    except ConfigError as e:
        raise SystemExit(f"mxref: configuration error: {e}")
