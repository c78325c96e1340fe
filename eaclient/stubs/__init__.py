"""Type-checking support for eaclient: the local MetaTrader5 stub overlay (not shipped in the agent's wheel)."""
