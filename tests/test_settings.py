"""Production settings: required variables fail loudly, and `check --deploy` is clean with real values."""

import os
import subprocess
import sys

from django.conf import settings

PRODUCTION_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "x7$kq!9vP2m#Lr8wZt4&Yb6nHc1@Jd5sFg3^Ua0eQi-Wo_Ex+Ry=Tz~Vl*Mp%Nk",
    "ALLOWED_HOSTS": "suho.example.com",
    "DATABASE_URL": "postgres://db.internal:5432/suho",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "NATS_URL": "nats://nats.internal:4222",
    "DB_SERVICE_PASSWORD": "service-secret",
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV and not k.startswith("SUHO_")}
    clean["DJANGO_SETTINGS_MODULE"] = "suho.settings"
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        cwd=settings.BASE_DIR,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_values():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_a_missing_required_variable_is_named_at_start_up():
    for name in ("SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "NATS_URL"):
        env = {k: v for k, v in PRODUCTION_ENV.items() if k != name}
        result = _manage("check", env=env)
        assert result.returncode != 0
        assert f"{name} is not set" in result.stderr
