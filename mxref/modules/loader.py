"""Loading the configured modules at start-up: import each by dotted path (or find it among
the Twisted plugins providing :class:`~mxref.modules.interfaces.IModuleFactory`), parse its
configuration, construct it with its :class:`~mxref.modules.api.ModuleApi`, and check it with
``verifyObject`` against every interface it declares.

Plugins are only used when the configuration names them: installing a package never enables
a module by itself. Every problem stops the server with a
:class:`~mxref.config.reader.ConfigError` naming the configuration entry and the module.
"""

import importlib
import re

from twisted.logger import Logger
from twisted.plugin import getPlugins
from twisted.web.resource import IResource, Resource
from zope.interface import providedBy
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from mxref.config.reader import ConfigError
from mxref.modules.hooks import LoadedModule
from mxref.modules.interfaces import (
    HOOK_METHODS,
    IModule,
    IModuleFactory,
    IPasswordProvider,
    IResourceProvider,
)

_log = Logger()

_MODULE_NAME = re.compile(r"[A-Za-z0-9_-]+")


def hook_names() -> frozenset:
    """Every hook method name ``on_failure`` may name."""
    return frozenset(name for names in HOOK_METHODS.values() for name in names)


def _import_class(module_config):
    """The class (or factory) ``module: a.b.C`` names."""
    path = module_config.module
    key = f"{module_config.key}.module"
    package_name, _, attribute = path.rpartition(".")
    try:
        package = importlib.import_module(package_name)
    except ImportError as e:
        raise ConfigError(key, f"cannot import module {path!r}: {e}") from None
    try:
        return getattr(package, attribute)
    except AttributeError:
        raise ConfigError(
            key, f"cannot load module {path!r}: {package_name} has no {attribute!r}"
        ) from None


def _find_plugin(module_config, plugin_package):
    """The :class:`IModuleFactory` plugin named ``module_config.module``."""
    key = f"{module_config.key}.module"
    found = [
        plugin
        for plugin in getPlugins(IModuleFactory, plugin_package)
        if plugin.name == module_config.module
    ]
    if not found:
        raise ConfigError(
            key,
            f"no module {module_config.module!r}: give a dotted path (package.Class) or the name of an "
            "installed mxref module plugin",
        )
    return found[0]


def _construct(module_config, api_factory, plugin_package, name_hint):
    """Build one module object."""
    key = module_config.key
    config = dict(module_config.config)
    if "." in module_config.module:
        module_class = _import_class(module_config)
        parse_config = getattr(module_class, "parse_config", None)
        if parse_config is not None:
            try:
                config = parse_config(config)
            except (ConfigError, ValueError, TypeError) as e:
                raise ConfigError(f"{key}.config", f"module {module_config.module}: {e}") from None
        make = module_class
    else:
        plugin = _find_plugin(module_config, plugin_package)
        make = plugin.make_module
    name = getattr(make, "name", None) or name_hint
    try:
        return make(config, api_factory(name if isinstance(name, str) else name_hint))
    except ConfigError as e:
        raise ConfigError(f"{key}.config", f"module {module_config.module}: {e}") from None
    except Exception as e:
        raise ConfigError(
            key, f"module {module_config.module} could not start: {type(e).__name__}: {e}"
        ) from None


def _verify(module_config, module):
    """``verifyObject`` against IModule and every interface the object declares."""
    key = f"{module_config.key}.module"
    if not IModule.providedBy(module):
        raise ConfigError(
            key,
            f"module {module_config.module} does not declare IModule (@implementer(IModule, ...))",
        )
    for interface in providedBy(module).flattened():
        if not interface.__module__.startswith("mxref."):
            continue
        try:
            verifyObject(interface, module)
        except Invalid as e:
            raise ConfigError(
                key,
                f"module {module_config.module} claims {interface.__name__} but does not implement it: {e}",
            ) from None
    name = module.name
    if not isinstance(name, str) or not _MODULE_NAME.fullmatch(name):
        raise ConfigError(
            key,
            f"module {module_config.module} has an invalid name {name!r} (letters, digits, _ and -)",
        )
    if IPasswordProvider.providedBy(module):
        types = module.login_types()
        if (
            types is None
            or isinstance(types, str)
            or not all(isinstance(t, str) and t for t in types)
        ):
            raise ConfigError(
                key, f"module {module_config.module}: login_types() must give login type strings"
            )
        if "m.login.password" in types:
            raise ConfigError(
                key,
                f"module {module_config.module}: m.login.password is checked by check_password, not a login type",
            )
    if IResourceProvider.providedBy(module):
        resources = module.resources()
        if not isinstance(resources, dict) or not all(
            isinstance(path, str) and IResource.providedBy(resource)
            for path, resource in resources.items()
        ):
            raise ConfigError(
                key,
                f"module {module_config.module}: resources() must map paths to IResource objects",
            )


def load_modules(module_configs, api_factory, plugin_package=None) -> list:
    """Construct and check every configured module, in configuration order.

    :param module_configs: the :class:`~mxref.config.modules.ModuleConfig` tuple.
    :param api_factory: ``api_factory(module_name) -> ModuleApi``.
    :param plugin_package: where to look for plugins (``twisted.plugins`` when ``None``).
    :returns: a list of :class:`~mxref.modules.hooks.LoadedModule` (not a Deferred).
    :raises ConfigError: for a module that cannot be imported, found, configured or
        verified, an unknown hook in ``on_failure``, or two modules with one name.
    """
    known_hooks = hook_names()
    loaded = []
    for module_config in module_configs:
        for hook in module_config.failure_policies:
            if hook not in known_hooks:
                raise ConfigError(
                    f"{module_config.key}.on_failure.{hook}",
                    f"is not a hook; hooks are {', '.join(sorted(known_hooks))}",
                )
        name_hint = module_config.module.rpartition(".")[2].lower()
        module = _construct(module_config, api_factory, plugin_package, name_hint)
        _verify(module_config, module)
        if any(other.name == module.name for other in loaded):
            raise ConfigError(module_config.key, f"two modules are named {module.name!r}")
        loaded.append(LoadedModule(module.name, module, module_config))
        _log.info(
            "loaded module {module} ({path}): {interfaces}",
            module=module.name,
            path=module_config.module,
            interfaces=", ".join(
                i.__name__
                for i in providedBy(module).flattened()
                if i.__module__.startswith("mxref.")
            ),
        )
    return loaded


def resource_prefixes(loaded_modules) -> dict:
    """Where each resource-providing module's resources go on the client listener.

    :returns: ``{URL prefix: IResource}``: for each module, a tree holding its
        ``resources()`` under ``resource_prefix`` or ``/_mxref/<name>``.
    """
    prefixes = {}
    for loaded in loaded_modules:
        if not IResourceProvider.providedBy(loaded.module):
            continue
        prefix = loaded.config.resource_prefix or f"/_mxref/{loaded.name}"
        resources = loaded.module.resources()
        root = resources.get("") or Resource()
        for path, resource in resources.items():
            segments = [
                segment.encode("utf-8") for segment in path.strip("/").split("/") if segment
            ]
            if not segments:
                continue
            node = root
            for segment in segments[:-1]:
                child = node.children.get(segment)
                if child is None:
                    child = Resource()
                    node.putChild(segment, child)
                node = child
            node.putChild(segments[-1], resource)
        prefixes[prefix] = root
    return prefixes
