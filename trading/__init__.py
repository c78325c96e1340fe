"""Ingest of everything an EA sends: balances, heartbeats, trade orders, and the EA gateway consumer."""
