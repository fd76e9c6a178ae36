"""The ``modules`` list: third-party extensions to load, each with its own configuration.

Same shape as Synapse::

    modules:
      - module: my_package.MyModule
        config:
          some_option: 1

The loader (``mxref.modules``) imports ``module`` and hands it ``config``;
this section only checks the shape.
"""

import re
import types

import attrs

from mxref.config.reader import ConfigError, ConfigReader

_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@attrs.frozen
class ModuleConfig:
    """One module to load.

    :ivar module: the dotted import path of the module's class.
    :ivar config: its configuration mapping, exactly as written (read-only).
    """

    module: str
    config: types.MappingProxyType


def read_modules(reader: ConfigReader) -> tuple:
    """Read the top-level ``modules`` list."""
    modules = []
    for module_reader in reader.sections("modules"):
        name = module_reader.string("module")
        if not _DOTTED_NAME.fullmatch(name):
            raise ConfigError(
                module_reader.key_path("module"), f"{name!r} is not a dotted Python name"
            )
        config = module_reader.raw("config", {})
        if not isinstance(config, dict):
            raise ConfigError(
                module_reader.key_path("config"), f"must be a mapping, not {config!r}"
            )
        modules.append(ModuleConfig(module=name, config=types.MappingProxyType(config)))
        module_reader.warn_about_unread()
    return tuple(modules)
