"""The public API of mxref.events, and the purity of the core."""

import inspect
import os
import subprocess
import sys

from twisted.trial import unittest

import mxref.events


class PublicApiTests(unittest.TestCase):
    """mxref.events exports the documented names with the documented shapes."""

    def test_names(self):
        """Every name the issue fixes is exported from mxref.events."""
        for name in (
            "ROOM_VERSIONS",
            "redact",
            "compute_content_hash",
            "compute_event_id",
            "sign_event",
            "verify_event_signatures",
            "check_auth",
            "resolve_state",
            "AuthError",
        ):
            self.assertIn(name, mxref.events.__all__)
            self.assertTrue(hasattr(mxref.events, name), name)

    def test_signatures(self):
        """The stable functions take the documented parameters, in order."""
        expected = {
            "redact": ["event", "room_version"],
            "compute_content_hash": ["event"],
            "compute_event_id": ["event", "room_version"],
            "sign_event": ["event", "server_name", "signing_key", "room_version"],
            "verify_event_signatures": ["event", "room_version", "key_lookup"],
            "check_auth": ["event", "auth_events", "room_version"],
            "resolve_state": ["room_version", "state_sets", "events"],
        }
        for name, parameters in expected.items():
            signature = inspect.signature(getattr(mxref.events, name))
            positional = [
                p.name
                for p in signature.parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
            self.assertEqual(positional[: len(parameters)], parameters, name)


class PurityTests(unittest.TestCase):
    """The core does no I/O: nothing under mxref/events imports the reactor, twisted.web or storage."""

    def test_no_reactor_web_or_storage_imports(self):
        """Importing every module of mxref.events loads neither twisted.internet, twisted.web nor mxref.storage."""
        package_dir = os.path.dirname(mxref.events.__file__)
        modules = sorted(
            "mxref.events." + name[:-3]
            for name in os.listdir(package_dir)
            if name.endswith(".py") and name != "__init__.py"
        )
        self.assertIn("mxref.events.stateres", modules)
        script = (
            "import importlib, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[:2] in "
            "(['twisted', 'internet'], ['twisted', 'web']) or m.startswith('mxref.storage'))\n"
            "print(bad)\n"
        )
        output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        self.assertEqual(output.stdout.strip(), "[]")
