"""The whole parsed configuration: :class:`HomeServerConfig` and :func:`load_config`.

``homeserver.yaml`` is read once at start-up into frozen, typed sections;
the rest of mxref receives the sections it needs as constructor arguments
and never looks at the YAML again. Key names and shapes are Synapse's
wherever the concept is the same, so an operator's Synapse configuration
mostly carries over: unknown keys give warnings (kept in
:attr:`HomeServerConfig.warnings`), invalid values give a :class:`ConfigError`
naming the key.
"""

import os

import attrs
import yaml

from mxref.config.database import DatabaseConfig
from mxref.config.federation import FederationConfig
from mxref.config.keys import KeyConfig
from mxref.config.listeners import read_listeners
from mxref.config.media import MediaConfig
from mxref.config.modules import read_modules
from mxref.config.ratelimiting import RateLimitConfig
from mxref.config.reader import ConfigError, ConfigReader
from mxref.config.registration import RegistrationConfig
from mxref.config.server import ServerConfig
from mxref.config.tls import TLSConfig

#: Top-level keys found in Synapse's generated configuration that have no meaning in mxref.
IGNORED_SYNAPSE_KEYS = (
    "report_stats",
    "macaroon_secret_key",
    "form_secret",
    "suppress_key_server_warning",
    "enable_metrics",
    "url_preview_enabled",
    "rc_admin_redaction",
    "rc_joins",
    "rc_joins_per_room",
    "rc_invites",
    "rc_third_party_invite",
    "rc_3pid_validation",
    "rc_room_creation",
    "rc_presence",
    "rc_delayed_event_mgmt",
    "rc_reports",
    "rc_media_create",
    "rc_registration_token_validity",
    "rc_key_requests",
)


@attrs.frozen
class HomeServerConfig:
    """Every section of ``homeserver.yaml``.

    :ivar config_dir: the directory relative paths were resolved against.
    :ivar server: identity and general behaviour (``server_name``, ``public_baseurl``, ...).
    :ivar listeners: the HTTP listeners, a tuple of :class:`~mxref.config.listeners.ListenerConfig`.
    :ivar database: the database engine and connection arguments.
    :ivar keys: our signing key file, old keys, trusted key servers.
    :ivar tls: our certificate and how other servers' certificates are checked.
    :ivar federation: which servers and IP addresses we may reach.
    :ivar registration: who may create accounts.
    :ivar ratelimiting: the ``rc_*`` limits.
    :ivar media: the media store.
    :ivar modules: third-party modules, a tuple of :class:`~mxref.config.modules.ModuleConfig`.
    :ivar warnings: the warnings produced while reading (unknown keys, skipped listeners).
    """

    config_dir: str
    server: ServerConfig
    listeners: tuple
    database: DatabaseConfig
    keys: KeyConfig
    tls: TLSConfig
    federation: FederationConfig
    registration: RegistrationConfig
    ratelimiting: RateLimitConfig
    media: MediaConfig
    modules: tuple
    warnings: tuple = ()

    @property
    def server_name(self) -> str:
        """Shorthand for ``server.server_name``."""
        return self.server.server_name

    @classmethod
    def from_dict(cls, data, config_dir: str) -> "HomeServerConfig":
        """Parse the YAML document ``data`` (a dict).

        :param data: the parsed ``homeserver.yaml``.
        :param config_dir: the directory that relative paths in ``data`` are relative to
            (normally the directory holding ``homeserver.yaml``).
        :raises ConfigError: naming the first invalid key.
        """
        warnings = []
        reader = ConfigReader(data, "", os.path.abspath(config_dir), warnings)
        server = ServerConfig.read(reader)
        config = cls(
            config_dir=reader.config_dir,
            server=server,
            listeners=read_listeners(reader),
            database=DatabaseConfig.read(reader),
            keys=KeyConfig.read(reader, server.server_name),
            tls=TLSConfig.read(reader),
            federation=FederationConfig.read(reader),
            registration=RegistrationConfig.read(reader),
            ratelimiting=RateLimitConfig.read(reader),
            media=MediaConfig.read(reader),
            modules=read_modules(reader),
            warnings=(),
        )
        for index, listener in enumerate(config.listeners):
            if listener.tls and not (
                config.tls.tls_certificate_path and config.tls.tls_private_key_path
            ):
                missing = (
                    "tls_certificate_path"
                    if not config.tls.tls_certificate_path
                    else "tls_private_key_path"
                )
                raise ConfigError(
                    missing, f"is required because a listener (listeners[{index}]) has tls: true"
                )
        reader.warn_about_unread(ignored_synapse_keys=IGNORED_SYNAPSE_KEYS)
        return attrs.evolve(config, warnings=tuple(warnings))


def load_config(path: str) -> HomeServerConfig:
    """Read and parse the YAML file at ``path``; relative paths inside are taken from its directory.

    :raises ConfigError: if the file cannot be read, is not YAML, or holds an invalid value
        (the error's ``key`` names it; ``"(file)"`` for file-level problems).
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError("(file)", f"cannot read {path}: {e.strerror}")
    except yaml.YAMLError as e:
        raise ConfigError("(file)", f"{path} is not valid YAML: {e}")
    return HomeServerConfig.from_dict(data, os.path.dirname(os.path.abspath(path)))
