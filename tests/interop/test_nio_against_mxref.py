"""matrix-nio plays the same two-user chat scenario against mxref run as ``twistd mxref``."""

from twisted.trial import unittest

from mxref.testing.processes import MxrefProcess
from tests.interop.test_nio_against_synapse import NioChatScenarioMixin


class NioAgainstMxrefTests(NioChatScenarioMixin, unittest.TestCase):
    """matrix-nio against mxref: registration, rooms, edits, sync and paging work end to end."""

    def start_server(self):
        server = MxrefProcess(self.mktemp())
        server.start()
        self.addCleanup(server.stop)
        return server
