"""Portal routes, mounted under /portal/ (sign-up is public; everything else needs a signed-in trader).

In `trading`, the top layer, because the portal's pages come from every app below it (docs/dependencies.md)."""

from django.urls import include, path

from accounts import views
from signals import views as signal_views
from trading import portal_views

app_name = "portal"

urlpatterns = [
    path("", views.account_list, name="accounts"),
    path("signup/", views.signup, name="signup"),
    path("accounts/add/", views.account_add, name="account-add"),
    path("accounts/<uuid:account_id>/", portal_views.account_detail, name="account"),
    path("accounts/<uuid:account_id>/keys/", views.api_key_new, name="key-new"),
    path("accounts/<uuid:account_id>/keys/<uuid:key_id>/rotate/", views.api_key_rotate_view, name="key-rotate"),
    path("accounts/<uuid:account_id>/keys/<uuid:key_id>/revoke/", views.api_key_revoke_view, name="key-revoke"),
    path("accounts/<uuid:account_id>/risk/", views.account_risk, name="account-risk"),
    path("accounts/<uuid:account_id>/settings/", views.account_settings, name="account-settings"),
    path("accounts/<uuid:account_id>/stop/", views.account_stop, name="account-stop"),
    path("signals/", signal_views.signal_list, name="signals"),
    path("signals/<uuid:signal_id>/cancel/", signal_views.signal_cancel_view, name="signal-cancel"),
    path("docs/protocol/", views.protocol_doc, name="protocol-doc"),
    path("privacy/", include("compliance.portal_urls")),  # by name: compliance's privacy views sit above accounts
]
