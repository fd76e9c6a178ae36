"""The ``modules`` list: third-party extensions to load, each with its own configuration.

Same shape as Synapse, with three optional keys of mxref's own::

    modules:
      - module: my_package.MyModule      # dotted path of the class, or a Twisted plugin's name
        config:                          # handed to the module as it is
          some_option: 1
        hook_timeout: 10s                # how long one hook call may take (default 10 s)
        on_failure: fail_closed          # or fail_open, or per hook:
                                         #   {check_event: fail_open, check_login: fail_closed}
        resource_prefix: /_mxref/mine    # where its web resources go (default /_mxref/<name>)

The loader (:mod:`mxref.modules.loader`) imports ``module``, checks the hook names in
``on_failure`` against the interfaces and hands the module ``config``; this section only
checks the shape. ``docs/modules.md`` describes every key.
"""

import re
import types

import attrs

from mxref.config.reader import ConfigError, ConfigReader

_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

#: What may happen when a module's hook raises, fails or takes longer than ``hook_timeout``.
FAIL_CLOSED = "fail_closed"
FAIL_OPEN = "fail_open"
FAILURE_POLICIES = (FAIL_CLOSED, FAIL_OPEN)

#: ``hook_timeout`` when not configured, in milliseconds.
DEFAULT_HOOK_TIMEOUT_MS = 10_000


@attrs.frozen
class ModuleConfig:
    """One module to load.

    :ivar module: the dotted import path of the module's class, or (without a dot) the name
        of a Twisted plugin providing :class:`~mxref.modules.interfaces.IModuleFactory`.
    :ivar config: its configuration mapping, exactly as written (read-only).
    :ivar hook_timeout_ms: how long one call of one of its hooks may take.
    :ivar default_failure_policy: ``"fail_closed"`` or ``"fail_open"`` for hooks not named in
        ``failure_policies``.
    :ivar failure_policies: ``{hook method name: policy}`` (read-only).
    :ivar resource_prefix: the URL path prefix for its resources, or ``None`` for
        ``/_mxref/<module name>``.
    :ivar key: where this entry is in the configuration (``modules[0]``), for error messages.
    """

    module: str
    config: types.MappingProxyType
    hook_timeout_ms: int = DEFAULT_HOOK_TIMEOUT_MS
    default_failure_policy: str = FAIL_CLOSED
    failure_policies: types.MappingProxyType = types.MappingProxyType({})
    resource_prefix: str = None
    key: str = "modules"

    def failure_policy(self, hook: str) -> str:
        """The policy for one hook method (``"check_event"``...)."""
        return self.failure_policies.get(hook, self.default_failure_policy)


def _read_policy(key: str, value) -> str:
    if value not in FAILURE_POLICIES:
        raise ConfigError(key, f"must be fail_closed or fail_open, not {value!r}")
    return value


def _read_failure_policies(module_reader: ConfigReader):
    """``on_failure``: a policy for every hook, or a mapping from hook name to policy."""
    key = module_reader.key_path("on_failure")
    value = module_reader.raw("on_failure", FAIL_CLOSED)
    if isinstance(value, str):
        return _read_policy(key, value), types.MappingProxyType({})
    if not isinstance(value, dict):
        raise ConfigError(
            key, f"must be fail_closed, fail_open or a mapping of hook names to them, not {value!r}"
        )
    policies = {}
    for hook, policy in value.items():
        if not isinstance(hook, str):
            raise ConfigError(key, f"hook names must be strings, not {hook!r}")
        policies[hook] = _read_policy(f"{key}.{hook}", policy)
    return FAIL_CLOSED, types.MappingProxyType(policies)


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
        hook_timeout_ms = module_reader.duration_ms("hook_timeout", DEFAULT_HOOK_TIMEOUT_MS)
        if hook_timeout_ms <= 0:
            raise ConfigError(module_reader.key_path("hook_timeout"), "must be longer than 0")
        default_policy, policies = _read_failure_policies(module_reader)
        prefix = module_reader.string("resource_prefix", None)
        if prefix is not None and (not prefix.startswith("/") or not prefix.strip("/")):
            raise ConfigError(
                module_reader.key_path("resource_prefix"),
                f"must be a URL path such as /_mxref/mine, not {prefix!r}",
            )
        modules.append(
            ModuleConfig(
                module=name,
                config=types.MappingProxyType(config),
                hook_timeout_ms=hook_timeout_ms,
                default_failure_policy=default_policy,
                failure_policies=policies,
                resource_prefix=prefix,
                key=module_reader.location,
            )
        )
        module_reader.warn_about_unread()
    return tuple(modules)
