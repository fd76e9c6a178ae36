"""Federation reach: which servers we talk to and which IP addresses outbound requests may go to.

``federation_domain_whitelist`` limits federation to a list of server names
(absent or null: federate with everyone). ``ip_range_blacklist`` keeps
outbound requests (federation, and any other server-side fetch) away from
private and special-purpose networks unless ``ip_range_whitelist`` lets an
address through; this protects the network the server runs in from being
probed through it (server-side request forgery). The default list is
Synapse's: the IANA special-purpose ranges. As in Synapse, ``0.0.0.0`` and
``::`` are always refused.

Server discovery itself is in the Server-Server API, "Resolving server names"
(https://spec.matrix.org/v1.19/server-server-api/#resolving-server-names).
"""

import ipaddress

import attrs

from mxref.config.reader import ConfigError, ConfigReader

#: Synapse's default ``ip_range_blacklist``: loopback, private, shared, link-local,
#: documentation, benchmarking, multicast and other special-purpose ranges.
DEFAULT_IP_RANGE_BLACKLIST = (
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "192.0.0.0/24",
    "169.254.0.0/16",
    "192.88.99.0/24",
    "198.18.0.0/15",
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "::1/128",
    "fe80::/10",
    "fc00::/7",
    "2001:db8::/32",
    "ff00::/8",
    "fec0::/10",
)

#: Always refused, whatever the configuration says.
ALWAYS_BLACKLISTED = ("0.0.0.0/32", "::/128")


def _read_networks(reader: ConfigReader, key: str, default: tuple) -> tuple:
    networks = []
    for index, text in enumerate(reader.string_list(key, default)):
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ConfigError(f"{key}[{index}]", f"{text!r} is not an IP address or CIDR range")
    return tuple(networks)


@attrs.frozen
class FederationConfig:
    """Outbound-reach settings.

    :ivar federation_domain_whitelist: the only server names we federate with, or ``None`` for all.
    :ivar ip_range_blacklist: networks outbound requests must not reach (``ipaddress`` networks,
        including :data:`ALWAYS_BLACKLISTED`).
    :ivar ip_range_whitelist: networks allowed even when blacklisted.
    """

    federation_domain_whitelist: tuple | None = None
    ip_range_blacklist: tuple = ()
    ip_range_whitelist: tuple = ()

    def is_ip_allowed(self, address) -> bool:
        """Whether an outbound request may connect to ``address`` (a string or ``ipaddress`` object)."""
        address = ipaddress.ip_address(address)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.ip_range_whitelist):
            return True
        return not any(address in network for network in self.ip_range_blacklist)

    def is_domain_allowed(self, server_name: str) -> bool:
        """Whether we federate with ``server_name`` (always true without a whitelist)."""
        if self.federation_domain_whitelist is None:
            return True
        return server_name in self.federation_domain_whitelist

    @classmethod
    def read(cls, reader: ConfigReader) -> "FederationConfig":
        """Read the top-level federation reach keys."""
        blacklist = _read_networks(reader, "ip_range_blacklist", DEFAULT_IP_RANGE_BLACKLIST)
        blacklist += tuple(ipaddress.ip_network(text) for text in ALWAYS_BLACKLISTED)
        return cls(
            federation_domain_whitelist=reader.string_list("federation_domain_whitelist", None),
            ip_range_blacklist=blacklist,
            ip_range_whitelist=_read_networks(reader, "ip_range_whitelist", ()),
        )
