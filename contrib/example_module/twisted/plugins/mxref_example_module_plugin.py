"""Offers the example module as a Twisted plugin: ``module: example`` in ``homeserver.yaml``
enables it (installing the package alone enables nothing)."""

from twisted.plugin import IPlugin
from zope.interface import provider

from mxref.interfaces import IModuleFactory


@provider(IPlugin, IModuleFactory)
class example:
    """Builds :class:`mxref_example_module.PatternRejecter`."""

    name = "example"

    @staticmethod
    def make_module(config, api):
        """The module, with its configuration checked as for ``module: mxref_example_module.PatternRejecter``."""
        from mxref_example_module import PatternRejecter

        return PatternRejecter(PatternRejecter.parse_config(config), api)
