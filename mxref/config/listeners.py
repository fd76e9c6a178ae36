"""The ``listeners`` section: which ports to open and which APIs each one serves.

Shapes follow Synapse's ``listeners`` option::

    listeners:
      - port: 8448
        bind_addresses: ['::', '0.0.0.0']
        type: http
        tls: true
        x_forwarded: false
        resources:
          - names: [client, federation]
            compress: false

Any listener may serve any set of resources with or without TLS. mxref adds
one key, ``endpoint``: a Twisted server endpoint string (``"tcp:8008"``,
``"unix:/run/mxref.sock"``, ``"systemd:domain=INET:index=0"``) used instead of
``port`` and ``bind_addresses``.

Federation traffic is served over TLS (Server-Server API, "TLS",
https://spec.matrix.org/v1.19/server-server-api/#tls), either by a listener
with ``tls: true`` or by a reverse proxy in front of a plain one.
"""

import ipaddress

import attrs

from mxref.config.reader import ConfigError, ConfigReader

#: Synapse's default when ``bind_addresses`` is absent: every IPv6 and IPv4 address.
DEFAULT_BIND_ADDRESSES = ("::", "0.0.0.0")

#: Listener types Synapse has that mxref does not serve; such listeners are skipped with a warning.
_SYNAPSE_ONLY_TYPES = ("metrics", "manhole", "replication")


@attrs.frozen
class ResourceGroupConfig:
    """One entry of a listener's ``resources``: some resource names sharing a compression setting.

    :ivar names: resource names, e.g. ``("client", "federation")``.
    :ivar compress: gzip responses when the client accepts it.
    """

    names: tuple
    compress: bool = False


@attrs.frozen
class ListenerConfig:
    """One HTTP listener.

    :ivar port: the TCP port (0 asks the OS for a free one), or ``None`` when ``endpoint`` is used.
    :ivar bind_addresses: the IP addresses to listen on, one socket each.
    :ivar tls: serve HTTPS with ``tls_certificate_path``/``tls_private_key_path``.
    :ivar x_forwarded: trust ``X-Forwarded-For``/``X-Forwarded-Proto`` from a reverse proxy.
    :ivar resources: the resource groups served.
    :ivar endpoint: a Twisted server endpoint string replacing ``port``/``bind_addresses``.
    """

    port: int | None
    bind_addresses: tuple = DEFAULT_BIND_ADDRESSES
    tls: bool = False
    x_forwarded: bool = False
    resources: tuple = ()
    endpoint: str | None = None

    @property
    def resource_names(self) -> tuple:
        """Every resource name served by this listener, in configuration order, without repeats."""
        names = []
        for group in self.resources:
            names.extend(name for name in group.names if name not in names)
        return tuple(names)

    @classmethod
    def read(cls, reader: ConfigReader):
        """Read one listener; returns ``None`` for a Synapse-only listener type (after warning)."""
        listener_type = reader.string("type", "http")
        if listener_type in _SYNAPSE_ONLY_TYPES:
            reader.warn(
                "type", f"{listener_type!r} listeners are not supported by mxref; listener skipped"
            )
            return None
        if listener_type != "http":
            raise ConfigError(reader.key_path("type"), f"must be 'http', not {listener_type!r}")

        endpoint = reader.string("endpoint", None)
        if endpoint is not None:
            port = reader.integer("port", None, minimum=0, maximum=65535)
            if port is not None or reader.has("bind_addresses") or reader.has("bind_address"):
                raise ConfigError(
                    reader.key_path("endpoint"), "cannot be combined with port or bind_addresses"
                )
            bind_addresses = ()
        else:
            port = reader.integer("port", minimum=0, maximum=65535)
            bind_addresses = _read_bind_addresses(reader)

        groups = []
        for group_reader in reader.sections("resources"):
            names = group_reader.string_list("names", ())
            if not names:
                raise ConfigError(
                    group_reader.key_path("names"), "must list at least one resource name"
                )
            groups.append(
                ResourceGroupConfig(names=names, compress=group_reader.boolean("compress", False))
            )
            group_reader.warn_about_unread()
        if not groups:
            raise ConfigError(reader.key_path("resources"), "must list at least one resource group")

        listener = cls(
            port=port,
            bind_addresses=bind_addresses,
            tls=reader.boolean("tls", False),
            x_forwarded=reader.boolean("x_forwarded", False),
            resources=tuple(groups),
            endpoint=endpoint,
        )
        reader.warn_about_unread(ignored_synapse_keys=("request_id_header", "tag", "experimental"))
        return listener


def _read_bind_addresses(reader: ConfigReader) -> tuple:
    """``bind_addresses`` (or Synapse's older single ``bind_address``), each checked to be an IP literal."""
    if reader.has("bind_addresses"):
        addresses = reader.string_list("bind_addresses")
        key = reader.key_path("bind_addresses")
        reader.raw("bind_address")
    elif reader.has("bind_address"):
        addresses = (reader.string("bind_address"),)
        key = reader.key_path("bind_address")
    else:
        return DEFAULT_BIND_ADDRESSES
    if not addresses:
        raise ConfigError(key, "must list at least one address")
    for index, address in enumerate(addresses):
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ConfigError(f"{key}[{index}]", f"{address!r} is not an IPv4 or IPv6 address")
    return addresses


def read_listeners(reader: ConfigReader) -> tuple:
    """Read the top-level ``listeners`` list (at least one HTTP listener is required)."""
    listeners = []
    for listener_reader in reader.sections("listeners"):
        listener = ListenerConfig.read(listener_reader)
        if listener is not None:
            listeners.append(listener)
    if not listeners:
        raise ConfigError("listeners", "at least one http listener is required")
    return tuple(listeners)
