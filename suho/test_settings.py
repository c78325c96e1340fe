"""Settings for the test suite: the production settings, with development defaults and no TLS redirect."""

import os

os.environ.setdefault("SUHO_TESTING", "1")

from suho.settings import *  # noqa: F403

# A back-off test fails past a limit, then checks the next attempt is refused: with the production first block of
# 1 s, a loaded machine can take longer than that between the two (seen under CI load). No test waits a block out.
AUTH_BACKOFF_FIRST_BLOCK_S = 30

# A server with the timescaledb package but without it in shared_preload_libraries (`PRELOAD=0
# ../shared/timescaledb/start 55433 /tmp/ts-nopreload`, as CI's TimescaleDB pass starts): the detection tests use it.
TIMESCALEDB_NOT_PRELOADED_URL = os.environ.get("SUHO_TEST_TIMESCALEDB_NOT_PRELOADED_URL", "")
