"""Settings for the test suite: the production settings, with development defaults and no TLS redirect."""

import os

os.environ.setdefault("SUHO_TESTING", "1")

from suho.settings import *  # noqa: F403
