"""Fixtures for the quotes tests: committed rows (feeds write from other threads), removed by the owner afterwards."""

from __future__ import annotations
