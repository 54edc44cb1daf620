"""Shared fixtures of the Python package's tests (run by `make test`: ctest python_pytest).

TENSAIR_CLI names the tensair binary (the CLI the Python results are compared with);
PYTHONPATH must reach build/python."""
import os
import subprocess
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture(scope="session")
def cli():
    path = os.environ.get("TENSAIR_CLI", os.path.join(REPO, "build", "bin", "tensair"))
    assert os.path.exists(path), f"no tensair CLI at {path} (set TENSAIR_CLI)"
    return path


@pytest.fixture
def out(tmp_path):
    return str(tmp_path / "out")


def script_env():
    """The environment for a child interpreter: PYTHONPATH made absolute."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in
                                        env.get("PYTHONPATH", "").split(os.pathsep) if p)
    return env


def run_script(code, tmp_path, ranks=1, timeout=240):
    """Runs `code` as a script in a fresh interpreter (under mpirun for ranks > 1)."""
    script = tmp_path / "script.py"
    script.write_text(code)
    env = script_env()
    cmd = [sys.executable, str(script)]
    if ranks > 1:
        cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none",
               "-x", "PYTHONPATH"] + cmd
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=timeout)
