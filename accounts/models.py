"""Identity (tenants, users) and the trader's MT5 accounts."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractUser
from django.db import models


class Tenant(models.Model):
    """One customer organisation; every tenant-owned row carries its id and row-level security filters on it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    is_active = models.BooleanField(default=True)
    trading_enabled = models.BooleanField(default=True, help_text="Off = emergency stop for every account.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "suho_tenants"

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A trader (belongs to one tenant) or an operator (staff, may have no tenant)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, null=True, blank=True, related_name="users")
    email = models.EmailField(unique=True, null=True, blank=True)

    class Meta:
        db_table = "suho_users"

    def __str__(self) -> str:
        return self.username
