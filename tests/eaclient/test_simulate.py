"""`python -m eaclient.simulate`: its refusals, and the demo key file it shares with `seed_demo`."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from accounts import demo
from eaclient import simulate


def refusal(*args: str) -> str:
    with pytest.raises(simulate.UsageError) as refused:
        simulate.simulators_build(simulate.parser_build().parse_args(args))
    return str(refused.value)


def test_simulate_refuses_a_shared_account_a_missing_key_a_missing_demo_file_and_too_few_accounts(tmp_path):
    account = str(uuid.uuid4())
    missing = tmp_path / "demo_ea.txt"
    assert refusal() == simulate.NO_ACCOUNTS
    assert refusal("--account", account, "--key", "k1", "--account", account, "--key", "k2") == (
        simulate.DUPLICATE_ACCOUNT
    )
    assert refusal("--account", account) == simulate.KEYS_MISMATCH.format(accounts=1, keys=0)
    assert refusal("--demo", "--demo-file", str(missing)) == simulate.NO_DEMO_FILE.format(path=missing)
    assert refusal("--account", account, "--key", "k", "--count", "2") == simulate.TOO_FEW.format(count=2, available=1)


def test_the_demo_key_is_read_from_the_state_directory_seed_demo_writes_it_to(tmp_path, monkeypatch, settings):
    settings.STATE_DIR = tmp_path
    account_id = uuid.uuid4()
    demo.demo_ea_file_write(account_id=account_id, api_key="suho_ea_k_s")
    monkeypatch.setenv("SUHO_STATE_DIR", str(tmp_path))
    [ea] = simulate.simulators_build(simulate.parser_build().parse_args(["--demo"]))
    assert (ea.config.account_id, ea.config.api_key) == (account_id, "suho_ea_k_s")


def test_simulate_runs_as_a_program_and_says_what_is_missing(tmp_path):
    env = {name: value for name, value in os.environ.items() if name != "SUHO_STATE_DIR"}
    done = subprocess.run(
        [sys.executable, "-m", "eaclient.simulate", "--demo"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    path = Path(".state") / "demo_ea.txt"
    assert (done.returncode, done.stderr.strip()) == (1, f"error: {simulate.NO_DEMO_FILE.format(path=path)}")
