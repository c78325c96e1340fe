"""Broker and reference quotes, the quote cache, and deviation analytics."""
