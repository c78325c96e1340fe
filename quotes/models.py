"""Broker quotes streamed by EAs and reference (Polygon) quotes, with the deviation between them (seed §6.2)."""

from __future__ import annotations

from django.db import models

from suho.fields import account_fk, price, tenant_fk


class BrokerQuote(models.Model):
    """One tick from the user's broker. Time series: 30-minute chunks, 90 days (seed §3.3).

    No foreign-key constraints in the database (as in the seed's DDL): each would be a deferred check per row at
    commit, and the two cost a third of the tick insert's throughput (27k → 37k rows/s). Only the gateway writes
    ticks, for the account and tenant of an authenticated session (in bridge mode the data bridge writes the batches
    gateways published on `suho.ingest.>`, an internal subject), and accounts are never deleted (GDPR erasure
    pseudonymises), so the ids always exist."""

    id = models.BigAutoField(primary_key=True)
    time = models.DateTimeField()
    tenant = tenant_fk(db_constraint=False)
    account = account_fk(db_constraint=False)
    symbol = models.CharField(max_length=32)
    bid = price()
    ask = price()
    spread = models.DecimalField(max_digits=10, decimal_places=2, help_text="Points")
    broker_server = models.CharField(max_length=100, blank=True)
    quote_quality = models.PositiveSmallIntegerField(null=True, blank=True)
    tradeable = models.BooleanField(default=True)
    market_session = models.CharField(max_length=20, blank=True)
    timestamp_trusted = models.BooleanField(default=True, help_text="False: EA clock implausible, server time used")
    polygon_mid_price = price(null=True, blank=True)
    price_deviation = price(null=True, blank=True, help_text="broker mid − reference mid")
    deviation_percent = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)

    class Meta:
        db_table = "mt5_broker_quotes"
        # One index for the seed's (tenant, symbol, time) reads and the latest quote of an account's symbol (the
        # quote cache's miss, the execution trigger): every index costs each tick an insert, and the two it replaces
        # were a seventh of PostgreSQL's CPU per tick (decision 0032).
        indexes = [
            models.Index("tenant", "symbol", "account", models.F("time").desc(), name="idx_quotes_symbol_acct_time"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.bid}/{self.ask} @ {self.time:%H:%M:%S}"


class ReferenceQuote(models.Model):
    """A reference-feed quote (Polygon or replay). Market data, not tenant data: shared by every tenant."""

    id = models.BigAutoField(primary_key=True)
    time = models.DateTimeField()
    symbol = models.CharField(max_length=32)
    bid = price()
    ask = price()
    source = models.CharField(max_length=20, default="polygon")

    class Meta:
        db_table = "mt5_reference_quotes"
        indexes = [models.Index("symbol", models.F("time").desc(), name="idx_refquotes_symbol_time")]

    def __str__(self) -> str:
        return f"{self.symbol} {self.bid}/{self.ask} ({self.source})"

    @property
    def mid(self):
        return (self.bid + self.ask) / 2
