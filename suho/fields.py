"""Column types shared by every app, so a price or an amount has one definition across the schema."""

from django.db import models


def price(**kwargs) -> models.DecimalField:
    """Prices: 12 integer digits, 8 decimals — JPY pairs, metals, indices and crypto all fit exactly."""
    return models.DecimalField(max_digits=20, decimal_places=8, **kwargs)


def money(**kwargs) -> models.DecimalField:
    """Amounts in account currency (JPY or IDR balances run to many digits)."""
    return models.DecimalField(max_digits=20, decimal_places=2, **kwargs)


def volume(**kwargs) -> models.DecimalField:
    """Lots (0.001 steps exist at some brokers)."""
    return models.DecimalField(max_digits=14, decimal_places=4, **kwargs)


def tenant_fk(**kwargs) -> models.ForeignKey:
    return models.ForeignKey("accounts.Tenant", on_delete=models.PROTECT, related_name="+", db_index=False, **kwargs)


def account_fk(**kwargs) -> models.ForeignKey:
    return models.ForeignKey(
        "accounts.MT5Account", on_delete=models.CASCADE, related_name="+", db_index=False, **kwargs
    )
