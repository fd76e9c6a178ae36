"""Loading modules from configuration: dotted paths, Twisted plugins, and the start-up errors
for modules that cannot be found, configured or verified."""

import os
import sys
import textwrap

from twisted.internet import reactor
from twisted.trial import unittest

from mxref.config.reader import ConfigError
from mxref.modules.loader import load_modules
from mxref.testing.homeserver import make_test_homeserver, test_config
from tests.client.support import deferred_test
from tests.modules.support import make_example_module_importable, module_entry, sample

make_example_module_importable()


def configs(testcase, *entries):
    """The parsed ``modules:`` list for ``entries``."""
    return test_config(
        os.path.abspath(testcase.mktemp()), overrides={"modules": list(entries)}
    ).modules


class RecordingApiFactory:
    """Stands in for the composition root's API factory; remembers the names asked for."""

    def __init__(self):
        self.names = []

    def __call__(self, name):
        self.names.append(name)
        return f"api for {name}"


class LoaderErrorTests(unittest.TestCase):
    """Clear start-up errors naming the configuration entry and the module."""

    def load_error(self, *entries):
        return self.assertRaises(
            ConfigError, load_modules, configs(self, *entries), RecordingApiFactory()
        )

    def test_unknown_package(self):
        """A package that cannot be imported is named, with the entry's key."""
        error = self.load_error(module_entry("no_such_package.Thing"))
        self.assertEqual(error.key, "modules[0].module")
        self.assertIn("cannot import module 'no_such_package.Thing'", error.msg)

    def test_unknown_class(self):
        """A package without the named class is reported."""
        error = self.load_error(
            module_entry(sample("WordChecker")), module_entry(sample("Missing"))
        )
        self.assertEqual(error.key, "modules[1].module")
        self.assertIn("has no 'Missing'", error.msg)

    def test_not_a_module(self):
        """A class that does not declare IModule is refused."""
        error = self.load_error(module_entry(sample("NotAModule")))
        self.assertIn("does not declare IModule", error.msg)

    def test_verify_object_failure(self):
        """A module claiming IEventChecker without check_event fails verifyObject, named."""
        error = self.load_error(module_entry(sample("ClaimsTooMuch")))
        self.assertEqual(error.key, "modules[0].module")
        self.assertIn("tests.modules.sample_modules.ClaimsTooMuch claims IEventChecker", error.msg)
        self.assertIn("check_event", error.msg)

    def test_parse_config_refusal(self):
        """parse_config's ValueError becomes an error on the entry's config key."""
        error = self.load_error(module_entry(sample("StrictConfig"), {"other": 1}))
        self.assertEqual(error.key, "modules[0].config")
        self.assertIn("needed: is required", error.msg)

    def test_unknown_hook_in_on_failure(self):
        """on_failure naming a hook that does not exist is refused."""
        error = self.load_error(
            module_entry(sample("WordChecker"), on_failure={"check_evnt": "fail_open"})
        )
        self.assertEqual(error.key, "modules[0].on_failure.check_evnt")

    def test_bad_policy(self):
        """on_failure values other than fail_closed and fail_open are refused when reading the config."""
        error = self.assertRaises(
            ConfigError,
            configs,
            self,
            module_entry(sample("WordChecker"), on_failure={"check_event": "maybe"}),
        )
        self.assertEqual(error.key, "modules[0].on_failure.check_event")

    def test_duplicate_names(self):
        """Two modules with one name are refused (their URLs and logs would clash)."""
        error = self.load_error(
            module_entry(sample("WordChecker")), module_entry(sample("WordChecker"))
        )
        self.assertIn("two modules are named 'wordchecker'", error.msg)

    def test_constructor_failure(self):
        """A constructor that raises stops start-up with the module named."""
        error = self.load_error(
            module_entry("mxref_example_module.PatternRejecter", {"pattern": "("})
        )
        self.assertEqual(error.key, "modules[0].config")
        self.assertIn("not a regular expression", error.msg)

    @deferred_test
    async def test_homeserver_refuses_to_start(self):
        """Building a homeserver with an unknown module fails with the ConfigError."""
        entries = [module_entry("no_such_package.Thing")]
        error = await self.assertFailure(
            make_test_homeserver(self, reactor, overrides={"modules": entries}), ConfigError
        )
        self.assertEqual(error.key, "modules[0].module")


class LoaderTests(unittest.TestCase):
    """What loading produces."""

    def test_configuration_order_and_config(self):
        """Modules come back in configuration order with their config and API."""
        factory = RecordingApiFactory()
        loaded = load_modules(
            configs(
                self,
                module_entry(sample("WordChecker"), {"name": "b"}),
                module_entry(sample("EventRecorder")),
            ),
            factory,
        )
        self.assertEqual([m.name for m in loaded], ["b", "eventrecorder"])
        self.assertEqual(loaded[0].module.config, {"name": "b"})
        self.assertEqual(loaded[0].module.api, "api for wordchecker")
        self.assertEqual(factory.names, ["wordchecker", "eventrecorder"])

    def test_policies_and_timeout(self):
        """hook_timeout and on_failure are read per module and per hook."""
        entry = module_entry(
            sample("WordChecker"), hook_timeout="250ms", on_failure={"check_event": "fail_open"}
        )
        (loaded,) = load_modules(configs(self, entry), RecordingApiFactory())
        self.assertEqual(loaded.hook_timeout, 0.25)
        self.assertEqual(loaded.failure_policy("check_event"), "fail_open")
        self.assertEqual(loaded.failure_policy("check_registration"), "fail_closed")
        (everything_open,) = load_modules(
            configs(self, module_entry(sample("WordChecker"), on_failure="fail_open")),
            RecordingApiFactory(),
        )
        self.assertEqual(everything_open.failure_policy("check_event"), "fail_open")


PLUGIN_SOURCE = textwrap.dedent('''
    """Two mxref module plugins for the loader tests."""
    from twisted.plugin import IPlugin
    from zope.interface import implementer, provider

    from mxref.interfaces import IModule, IModuleFactory


    @implementer(IModule)
    class Greeter:
        def __init__(self, name, config, api):
            self.name = name
            self.config = config


    @provider(IPlugin, IModuleFactory)
    class greeter_factory:
        name = "greeter"

        @staticmethod
        def make_module(config, api):
            return Greeter("greeter", config, api)


    @provider(IPlugin, IModuleFactory)
    class other_factory:
        name = "other"

        @staticmethod
        def make_module(config, api):
            raise AssertionError("a plugin nobody configured was built")
    ''')


class PluginTests(unittest.TestCase):
    """Modules found as Twisted plugins are used only when configured."""

    def setUp(self):
        root = os.path.abspath(self.mktemp())
        package = os.path.join(root, "mxref_test_plugins")
        os.makedirs(package)
        with open(os.path.join(package, "__init__.py"), "w") as f:
            f.write('"""Test plugins."""\n')
        with open(os.path.join(package, "greeters.py"), "w") as f:
            f.write(PLUGIN_SOURCE)
        sys.path.insert(0, root)
        self.addCleanup(sys.path.remove, root)
        self.addCleanup(
            lambda: [
                sys.modules.pop(n) for n in list(sys.modules) if n.startswith("mxref_test_plugins")
            ]
        )
        import mxref_test_plugins

        self.package = mxref_test_plugins

    def test_configured_plugin_loaded(self):
        """module: <plugin name> builds that plugin's module, and only that one."""
        loaded = load_modules(
            configs(self, module_entry("greeter", {"a": 1})), RecordingApiFactory(), self.package
        )
        self.assertEqual([(m.name, m.module.config) for m in loaded], [("greeter", {"a": 1})])

    def test_unconfigured_plugins_not_loaded(self):
        """Installed plugins do nothing when no configuration names them."""
        self.assertEqual(load_modules((), RecordingApiFactory(), self.package), [])

    def test_unknown_plugin(self):
        """A plugin name nothing provides is a clear error."""
        error = self.assertRaises(
            ConfigError,
            load_modules,
            configs(self, module_entry("nobody")),
            RecordingApiFactory(),
            self.package,
        )
        self.assertIn("no module 'nobody'", error.msg)
