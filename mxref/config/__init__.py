"""Typed, frozen configuration sections parsed once from ``homeserver.yaml`` (Synapse's key names)."""

from mxref.config.generate import generate_config
from mxref.config.homeserver_config import HomeServerConfig, load_config
from mxref.config.reader import ConfigError

__all__ = ["ConfigError", "HomeServerConfig", "generate_config", "load_config"]
