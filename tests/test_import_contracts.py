"""`make lint` runs the import contracts of pyproject.toml (docs/dependencies.md): they hold today, and a broken one
fails the run. The broken cases are made by editing a copy of the configuration, never the code."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
CONFIG = (ROOT / "pyproject.toml").read_text()


def lint_imports(config: str, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "pyproject.toml"
    path.write_text(config)
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", "--config", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_contracts_hold(tmp_path):
    result = lint_imports(CONFIG, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 kept, 0 broken" in result.stdout


PLUMBING_FORBIDDEN = 'forbidden_modules = ["accounts", "trading", "signals", "quotes", "compliance"]'
SERVER_FORBIDDEN = 'forbidden_modules = ["eaclient"]'


@pytest.mark.parametrize(
    ("listed", "forbidden", "contract"),
    [
        # suho.urls imports drf_spectacular's views: forbidden like an app, the plumbing contract breaks
        (PLUMBING_FORBIDDEN, "drf_spectacular", "suho (plumbing) imports no domain app"),
        # the gateway imports binproto: forbidden like eaclient, the server contract breaks
        (SERVER_FORBIDDEN, "binproto", "no server package imports eaclient"),
    ],
)
def test_an_import_the_order_forbids_fails_the_lint(tmp_path, listed, forbidden, contract):
    assert listed in CONFIG
    result = lint_imports(CONFIG.replace(listed, listed.replace("]", f', "{forbidden}"]'), 1), tmp_path)
    assert result.returncode == 1, result.stdout
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout


def test_an_app_put_below_one_it_imports_fails_the_lint(tmp_path):
    """The gateway moved under signals: its imports of delivery rows (and every other) now go upward."""
    listed = 'layers = ["compliance", "trading", "signals", '
    assert listed in CONFIG
    result = lint_imports(CONFIG.replace(listed, 'layers = ["compliance", "signals", "trading", ', 1), tmp_path)
    assert result.returncode == 1, result.stdout
    assert "domain apps in layers" in result.stdout and "trading is not allowed to import signals" in result.stdout


def test_compliance_below_an_app_fails_the_lint(tmp_path):
    """compliance put at the bottom (where its audit writer once sat): the risk monitor's and the dashboard's reads
    of accounts go upward."""
    listed = 'layers = ["compliance", "trading", "signals", "quotes", "accounts"]'
    assert listed in CONFIG
    result = lint_imports(
        CONFIG.replace(listed, 'layers = ["trading", "signals", "quotes", "accounts", "compliance"]', 1), tmp_path
    )
    assert result.returncode == 1, result.stdout
    assert "compliance is not allowed to import accounts" in result.stdout


def test_binproto_importing_anything_but_the_standard_library_fails_the_lint(tmp_path):
    """`binproto` imports `json` (standard library): forbid it as if it were a third-party package, and the contract
    breaks the way it would for `import django`."""
    config = CONFIG.replace('"websockets", "prometheus_client",', '"websockets", "prometheus_client", "json",', 1)
    assert config != CONFIG
    result = lint_imports(config, tmp_path)
    assert result.returncode == 1 and "binproto imports only the standard library BROKEN" in result.stdout


def test_an_exception_whose_import_is_gone_fails_the_lint(tmp_path):
    """An exception matching no import is refused, so none can linger (here one for the URLconf, which mounts
    `quotes.urls` by name and imports nothing of quotes)."""
    stale = f'{PLUMBING_FORBIDDEN}\nignore_imports = ["suho.urls -> quotes.**"]'
    result = lint_imports(CONFIG.replace(PLUMBING_FORBIDDEN, stale, 1), tmp_path)
    assert result.returncode == 1 and "No matches for ignored import" in result.stdout + result.stderr


def test_eaclient_importing_anything_but_binproto_websockets_and_the_standard_library_fails_the_lint(tmp_path):
    """`eaclient` imports `sqlite3` (standard library, the persisted outbox): forbid it as if it were a third-party
    package, and the contract breaks the way it would for `import django` in an EA."""
    listed = '"orjson", "yaml", "MetaTrader5",'
    assert listed in CONFIG
    result = lint_imports(CONFIG.replace(listed, f'{listed} "sqlite3",', 1), tmp_path)
    assert result.returncode == 1 and "eaclient is not allowed to import sqlite3" in result.stdout


def test_the_server_contracts_have_no_exceptions_left():
    """Issue 19's debt is paid: no upward import between the apps and no import of an app by suho is listed, so
    none is tolerated (the apps audit through suho.audit; the URLconf and the ASGI app load the apps' routes by
    name; prod-smoke, which drives every app from outside, is tests/prodsmoke.py)."""
    contracts = {c["id"]: c for c in tomllib.loads(CONFIG)["tool"]["importlinter"]["contracts"]}
    for name in ("apps-layered", "plumbing-below-apps", "server-without-eaclient"):
        assert "ignore_imports" not in contracts[name], name
