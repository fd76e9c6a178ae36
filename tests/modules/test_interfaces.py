"""The public surface (:mod:`mxref.interfaces`) and the module interfaces' own consistency."""

from twisted.trial import unittest
from zope.interface.verify import verifyObject

import mxref.interfaces
from mxref.modules.interfaces import HOOK_METHODS, IEventChecker, IModule, IResourceProvider, Reject
from tests.modules.support import make_example_module_importable

make_example_module_importable()


class PublicSurfaceTests(unittest.TestCase):
    """mxref.interfaces is a deliberate, pinned list."""

    def test_names(self):
        """Exactly these names are public; changing the list is changing mxref's contract."""
        self.assertEqual(
            sorted(mxref.interfaces.__all__),
            [
                "Allow",
                "IAccountStore",
                "IClientDataStore",
                "IEventChecker",
                "IEventListener",
                "IEventStore",
                "IFederationStore",
                "IInviteChecker",
                "ILoginChecker",
                "IModule",
                "IModuleFactory",
                "IPasswordProvider",
                "IRegistrationChecker",
                "IRemoteRooms",
                "IResourceProvider",
                "IRoomCreationChecker",
                "IRoomStore",
                "IStateStore",
                "ModuleApi",
                "Reject",
                "ReplaceContent",
            ],
        )
        for name in mxref.interfaces.__all__:
            self.assertTrue(hasattr(mxref.interfaces, name), name)

    def test_every_hook_method_listed(self):
        """HOOK_METHODS names every method of every hook interface (on_failure accepts these)."""
        for interface, methods in HOOK_METHODS.items():
            declared = {name for name in interface.names() if name != "login_types"}
            self.assertEqual(declared, set(methods), interface.__name__)

    def test_example_module_verifies(self):
        """The example module provides what it declares."""
        from mxref_example_module import PatternRejecter

        module = PatternRejecter(PatternRejecter.parse_config({"pattern": "x"}), api=None)
        for interface in (IModule, IEventChecker, IResourceProvider):
            self.assertTrue(verifyObject(interface, module))

    def test_reject_validity(self):
        """A Reject needs an errcode, a message and an error status."""
        self.assertTrue(Reject().is_valid())
        self.assertFalse(Reject("", "m").is_valid())
        self.assertFalse(Reject("M_X", "m", 200).is_valid())
