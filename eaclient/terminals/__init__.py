"""Implementations of eaclient.terminal.Terminal: simulated (eaclient.terminals.simulated) and MetaTrader 5
(eaclient.terminals.mt5, which imports MetaQuotes' MetaTrader5 package only when it connects)."""
