"""The portal's log-in page (suho.urls mounts it at /accounts/, before Django's other auth views): staff need their
authentication code here too (accounts/admin_login.py)."""

from django.contrib.auth.views import LoginView
from django.urls import path, reverse_lazy

from accounts.admin_login import PortalLoginForm

urlpatterns = [
    path(
        "login/",
        LoginView.as_view(next_page=reverse_lazy("portal:accounts"), authentication_form=PortalLoginForm),
        name="login",
    ),
]
