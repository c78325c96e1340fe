"""Settings for the test suite: the production settings, with development defaults and no TLS redirect."""

import os

os.environ.setdefault("SUHO_TESTING", "1")

from suho.settings import *  # noqa: F403

# A server with the timescaledb package but without it in shared_preload_libraries (`PRELOAD=0
# ../shared/timescaledb/start 55433 /tmp/ts-nopreload`, as CI's TimescaleDB pass starts): the detection tests use it.
TIMESCALEDB_NOT_PRELOADED_URL = os.environ.get("SUHO_TEST_TIMESCALEDB_NOT_PRELOADED_URL", "")
