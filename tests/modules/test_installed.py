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


#: The virtual environment made by the first test of this process (``{"python"}``, or
#: ``{"skip"}``/``{"failure"}`` with pip's output), shared by the others.
_INSTALLED = {}


def install_once(base_dir):
    """Create a virtual environment under ``base_dir`` and ``pip install`` mxref and the
    example module into it, once per test process; blocking.

    :returns: the dict stored in :data:`_INSTALLED`.
    """
    if _INSTALLED:
        return _INSTALLED
    mxref_source, example_source = copy_sources(os.path.join(base_dir, "src"))
    venv = os.path.join(base_dir, "venv")
    subprocess.run(
        [sys.executable, "-m", "venv", venv], check=True, timeout=120, env=clean_environment()
    )
    python = os.path.join(venv, "bin", "python")
    command = [python, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    result = subprocess.run(
        command + [mxref_source, example_source],
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_environment(venv),
    )
    output = result.stdout + result.stderr
    if result.returncode == 0:
        _INSTALLED.update(python=python, venv=venv)
    elif any(sign in output for sign in NETWORK_TROUBLE):
        _INSTALLED.update(skip=f"pip cannot reach a package index here:\n{output[-2000:]}")
    else:
        _INSTALLED.update(failure=f"pip install failed:\n{output[-4000:]}")
    return _INSTALLED


class InstalledExampleModuleTests(unittest.TestCase):
    """pip install mxref and contrib/example_module into a fresh virtual environment, then run
    ``twistd -n mxref`` from it with the module configured."""

    def setUp(self):
        installed = install_once(os.path.abspath(self.mktemp()))
        if "skip" in installed:
            raise unittest.SkipTest(installed["skip"])
        if "failure" in installed:
            self.fail(installed["failure"])
        self.python = installed["python"]
        self.venv = installed["venv"]
        self.workdir = os.path.abspath(self.mktemp())
        self.server = None

    def tearDown(self):
        if self.server is not None:
            self.server.stop()

    def start_server(self, modules, **kwargs):
        self.server = InstalledProcess(
            self.workdir, python=self.python, config_overrides={"modules": modules}, **kwargs
        )
        self.server.start()

    def check_pattern_refused(self):
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

    def test_installed_from_the_environment(self):
        """mxref and the module are imported from the virtual environment, not the source tree."""
        where = subprocess.run(
            [
                self.python,
                "-c",
                "import mxref, mxref_example_module as m; print(mxref.__file__, m.__file__)",
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=self.venv,
            env=clean_environment(self.venv),
        ).stdout.split()
        self.assertTrue(all(path.startswith(self.venv) for path in where), where)

    def test_pattern_refused_by_running_server(self):
        """With the module enabled by its dotted path, a matching message gets 403 M_FORBIDDEN
        and /_mxref/example/stats answers."""
        pattern = {"pattern": "(?i)buy cheap"}
        self.start_server([{"module": "mxref_example_module.PatternRejecter", "config": pattern}])
        self.check_pattern_refused()

    def test_enabled_as_plugin(self):
        """The same module enabled by its Twisted plugin name behaves the same."""
        self.start_server([{"module": "example", "config": {"pattern": "(?i)buy cheap"}}])
        self.check_pattern_refused()

    def test_installed_but_not_configured(self):
        """Installed but not configured, the module does nothing: the message is sent, no stats."""
        self.start_server([])
        alice = self.server.client_for("alice")
        room_id = alice.create_room(name="Market")
        alice.send_message(room_id, "BUY CHEAP watches")
        error = self.assertRaises(
            MatrixRequestError, request_json, self.server.client_url, "GET", "/_mxref/example/stats"
        )
        self.assertEqual(error.status, 404)

    def test_bad_module_config_stops_start_up(self):
        """An unknown module path stops twistd with an error naming the config key."""
        with self.assertRaises(HomeserverStartError):
            self.start_server([{"module": "mxref_example_module.NoSuchThing"}], start_timeout=30)
        self.assertIn(
            "configuration error: modules[0].module: cannot load module "
            "'mxref_example_module.NoSuchThing'",
            self.server.log_tail(),
        )
