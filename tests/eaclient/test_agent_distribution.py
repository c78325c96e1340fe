"""The agent's own distribution (eaclient/dist/pyproject.toml) as a trader installs it: a wheel built from this
repository, installed into a fresh virtual environment, brings binproto, eaclient and websockets and nothing of the
server (no Django); `suho-ea --help` works there, and the agent imports without MetaTrader5 (Linux has none)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = Path(settings.BASE_DIR)
    work = tmp_path_factory.mktemp("agent-dist")
    source = work / "src"  # a copy: the in-tree build leaves build/ and *.egg-info behind
    shutil.copytree(root / "binproto", source / "binproto", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(root / "eaclient", source / "eaclient", ignore=shutil.ignore_patterns("__pycache__", "build"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "wheels"),
         str(source / "eaclient" / "dist")],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = (work / "wheels").glob("suho_ea-*.whl")
    venv.create(work / "venv", with_pip=True, clear=True)
    bin_dir = work / "venv" / "bin"
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheel)], check=True, capture_output=True)
    return wheel, bin_dir


def run(bin_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """In the venv's folder, not the repository's (whose packages a `python -c` would find on its path)."""
    return subprocess.run(
        [str(bin_dir / args[0]), *args[1:]], capture_output=True, text=True, timeout=60, cwd=bin_dir.parent
    )


def test_the_wheel_holds_binproto_and_eaclient_only(installed):
    wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.startswith("suho_ea-")}
    assert top == {"binproto", "eaclient"}
    assert "eaclient/cli.py" in names and "eaclient/terminals/mt5.py" in names
    assert not [name for name in names if "/stubs/" in name or name.endswith(".pyi")]


def test_installing_it_pulls_in_no_django(installed):
    _, bin_dir = installed
    assert run(bin_dir, "python", "-c", "import django").returncode != 0
    code = "import importlib.metadata as m; print(' '.join(d.metadata['Name'].lower() for d in m.distributions()))"
    installed_names = set(run(bin_dir, "python", "-c", code).stdout.split()) - {"pip", "setuptools"}
    assert installed_names == {"suho-ea", "websockets"}, installed_names


def test_suho_ea_help_works(installed):
    _, bin_dir = installed
    result = run(bin_dir, "suho-ea", "--help")
    assert result.returncode == 0, result.stderr
    assert "--server" in result.stdout and "--key-file" in result.stdout and "SUHO_EA_KEY" in result.stdout


def test_the_agent_imports_without_metatrader5(installed):
    _, bin_dir = installed
    code = "import eaclient.agent, eaclient.cli, eaclient.terminals.mt5, eaclient.terminals.simulated; print('ok')"
    result = run(bin_dir, "python", "-c", code)
    assert result.stdout.strip() == "ok", result.stderr
    missing_key = run(
        bin_dir, "suho-ea", "--server", "ws://127.0.0.1:9/ws/ea/", "--account", "5678aaaa-bbbb-4ccc-8ddd-eeeeffff0001"
    )
    assert missing_key.returncode != 0 and "no API key" in missing_key.stderr
