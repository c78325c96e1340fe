"""Audit log, risk events, compliance reports and GDPR consents."""
