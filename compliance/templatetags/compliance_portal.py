"""Compliance's part of the portal's account page: its risk events. The page's view is trading's, a layer below,
so the template asks for them here (`{% load compliance_portal %}`) instead of the view importing compliance."""

from __future__ import annotations

from django import template

from compliance.selectors import account_risk_events as _account_risk_events

register = template.Library()


@register.simple_tag
def account_risk_events(account_id) -> list:
    """The account's latest risk events, read in the request's tenant context like the rest of the page."""
    return _account_risk_events(account_id=account_id)
