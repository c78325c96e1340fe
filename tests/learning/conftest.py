"""Fixtures for the learning-loop tests: committed rows (the loop reads every tenant through the operator role),
removed by the owner afterwards."""

from __future__ import annotations

import pytest
from factories import make_account, make_tenant, make_user


@pytest.fixture
def account(committed):
    tenant = make_tenant()
    return make_account(tenant, make_user(tenant))
