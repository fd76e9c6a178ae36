"""The example module as an operator uses it: installed with pip into a fresh virtual
environment together with mxref, enabled in ``homeserver.yaml``, changing what a running
``twistd -n mxref`` process does."""

import os
import shutil
import subprocess
import sys

from twisted.trial import unittest

from mxref.testing.csclient import MatrixRequestError, request_json
from mxref.testing.processes import HomeserverStartError, MxrefProcess

SOURCE_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

#: pip's messages when it cannot reach a package index at all.
NETWORK_TROUBLE = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "ProxyError",
)


def copy_sources(destination):
    """Copy what a source distribution of mxref holds (and the example module) out of the
    working tree, so pip's build leaves nothing behind in the repository."""
    os.makedirs(destination)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "dropin.cache", "_trial_temp*")
    for name in ("mxref", "twisted"):
        shutil.copytree(
            os.path.join(SOURCE_ROOT, name), os.path.join(destination, name), ignore=ignore
        )
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(SOURCE_ROOT, name), destination)
    example = os.path.join(destination, "example_module")
    shutil.copytree(os.path.join(SOURCE_ROOT, "contrib", "example_module"), example, ignore=ignore)
    return destination, example


def clean_environment(venv=None):
    """This environment without anything that would put the test run's packages on the new
    environment's path (``trial -j`` workers get ``PYTHONPATH``: pip would then think mxref and
    its dependencies are installed already)."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    if venv is not None:
        env["PATH"] = os.pathsep.join([os.path.join(venv, "bin"), env.get("PATH", "")])
    return env


class InstalledProcess(MxrefProcess):
    """``twistd -n mxref`` from the virtual environment only: no source tree on the path."""

    def environment(self):
        return clean_environment(os.path.dirname(os.path.dirname(self.python)))


class InstalledExampleModuleTests(unittest.TestCase):
    """pip install mxref and contrib/example_module, then run them."""

    def setUp(self):
        work = os.path.abspath(self.mktemp())
        os.makedirs(work)
        self.mxref_source, self.example_source = copy_sources(os.path.join(work, "src"))
        self.venv = os.path.join(work, "venv")
        subprocess.run(
            [sys.executable, "-m", "venv", self.venv],
            check=True,
            timeout=120,
            env=clean_environment(),
        )
        self.python = os.path.join(self.venv, "bin", "python")
        self.server = None
        self.workdir = os.path.join(work, "server")

    def tearDown(self):
        if self.server is not None:
            self.server.stop()

    def pip_install(self):
        result = subprocess.run(
            [
                self.python,
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "-q",
                self.mxref_source,
                self.example_source,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=clean_environment(self.venv),
        )
        if result.returncode != 0:
            output = result.stdout + result.stderr
            if any(sign in output for sign in NETWORK_TROUBLE):
                raise unittest.SkipTest(f"pip cannot reach a package index here:\n{output[-2000:]}")
            self.fail(f"pip install failed:\n{output[-4000:]}")

    def test_pattern_refused_by_running_server(self):
        """With the module enabled, a matching message gets 403 M_FORBIDDEN and /_mxref/example/stats answers."""
        self.pip_install()
        where = subprocess.run(
            [self.python, "-c", "import mxref, mxref_example_module; print(mxref.__file__)"],
            capture_output=True,
            text=True,
            check=True,
            cwd=self.venv,
            env=clean_environment(self.venv),
        ).stdout
        self.assertTrue(where.startswith(self.venv), where)

        modules = [
            {
                "module": "mxref_example_module.PatternRejecter",
                "config": {"pattern": "(?i)buy cheap"},
            }
        ]
        self.server = InstalledProcess(
            self.workdir, python=self.python, config_overrides={"modules": modules}
        )
        self.server.start()
        alice = self.server.client_for("alice")
        room_id = alice.create_room(name="Market")
        alice.send_message(room_id, "hello market")
        error = self.assertRaises(
            MatrixRequestError, alice.send_message, room_id, "BUY CHEAP watches"
        )
        self.assertEqual((error.status, error.errcode), (403, "M_FORBIDDEN"))
        status, stats = request_json(self.server.client_url, "GET", "/_mxref/example/stats")
        self.assertEqual(
            (status, stats), (200, {"pattern": "(?i)buy cheap", "checked": 2, "rejected": 1})
        )

    def test_bad_module_config_stops_start_up(self):
        """An unknown module path stops twistd with an error naming the config key."""
        self.pip_install()
        modules = [{"module": "mxref_example_module.NoSuchThing"}]
        self.server = InstalledProcess(
            self.workdir,
            python=self.python,
            config_overrides={"modules": modules},
            start_timeout=30,
        )
        self.assertRaises(HomeserverStartError, self.server.start)
        self.assertIn(
            "configuration error: modules[0].module: cannot load module 'mxref_example_module.NoSuchThing'",
            self.server.log_tail(),
        )
