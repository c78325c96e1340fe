"""Tenants, users, MT5 accounts, API keys and EA sessions: who may do what, and for which tenant."""
