"""The portal's privacy pages, mounted under /portal/privacy/ inside the portal's URL namespace (`portal:privacy`).

The portal's URLconf includes this module by name, not by import: the privacy views read every app (GDPR export and
erasure), so they sit in compliance's top layer, above the accounts app that owns the portal (docs/dependencies.md).
"""

from django.urls import path

from compliance import views

urlpatterns = [
    path("", views.privacy, name="privacy"),
    path("consent/", views.consent_change, name="consent"),
    path("export/", views.data_export, name="export"),
    path("erase/", views.erase, name="erase"),
]
