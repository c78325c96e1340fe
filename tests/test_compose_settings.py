"""docker/compose.yaml passes every setting of the README's table through from docker/.env, so the three cannot drift.

The README's settings table is what an operator reads; docker/env.example is what they copy to docker/.env; compose
hands each value to the containers. A setting added to settings.py and the README but not to compose would be
silently ignored in a container (as RISK_ALERT_EMAILS, EMAIL_*, POLYGON_API_KEY, NATS_MONITOR_URL and INGEST_MODE
were, issue 17). Compose is read with the smoke's own reader (tests/prodsmoke.py), so "passed through" means what
`make prod-smoke` gives the processes: a value set in docker/.env arrives unchanged in every service.
"""

from __future__ import annotations

import re

import pytest
import yaml
from prodsmoke import COMPOSE, DOCKERFILE, compose_services, dockerfile_read, smoke_variables

README = COMPOSE.parent.parent / "README.md"
ENV_EXAMPLE = COMPOSE.parent / "env.example"

# README settings compose does not pass, each with the reason (also in compose.yaml's comment under x-app-env).
NOT_PASSED = {
    "DEBUG": "production runs with DEBUG off; a container never gets the development values",
    "CELERY_TASK_ALWAYS_EAGER": "a debugging switch: tasks inline in web would bypass the worker",
    "STATIC_ROOT": "the image collects static files into /app/staticfiles at build time",
    "SUHO_STATE_DIR": "the image's /var/lib/suho, where beat's volume is mounted",
    "FEEDBACK_EXPORT_DIR": "SUHO_STATE_DIR/feedback, where the feedback-exports volume is mounted",
    "SUHO_EMBEDDED_PG_PORT": "make run's embedded servers",
    "SUHO_EMBEDDED_REDIS_PORT": "make run's embedded servers",
    "SUHO_EMBEDDED_NATS_PORT": "make run's embedded servers",
    "SUHO_NATS_CLUSTER_PORT": "make nats-cluster only: the dev cluster on loopback",
    "PORT": "make run only",
    "SUHO_DEMO_EA": "make run only",
    "SUHO_TESTING": "tests only",
}
MIGRATE_ONLY = {"DATABASE_ADMIN_URL"}  # the superuser's URL: the one-shot migrate job alone gets it
# docker/env.example's lines compose reads itself, not Suho.
COMPOSE_ONLY = {"POSTGRES_PASSWORD", "WEB_PUBLISH", "SUHO_IMAGE", "COMPOSE_PROFILES", "WEB_REPLICAS", "LB_CHECK_HOST"}


def readme_settings() -> list[str]:
    """Every variable the README's "Settings" table names (a row may name several: `EMAIL_HOST`, `EMAIL_PORT`, …)."""
    section = README.read_text().split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    names = []
    for line in section.splitlines():
        if line.startswith("| `"):
            names += re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1])
    return names


def env_example_names() -> set[str]:
    return {match[1] for match in re.finditer(r"^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE)}


def app_env_keys() -> set[str]:
    document = yaml.safe_load(COMPOSE.read_text())
    return set(document["x-app-env"])


def services_with(variables: dict[str, str]) -> dict:
    shell = {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/suho", "REDIS_URL": "redis://127.0.0.1:6379/0",
             "NATS_URL": "nats://127.0.0.1:4222"}  # fmt: skip
    interpolation, _database = smoke_variables(shell)
    image = dockerfile_read(DOCKERFILE.read_text())
    services = compose_services(COMPOSE.read_text(), image, {**interpolation, **variables})
    return {service.name: service for service in services}


def test_the_readme_table_is_read():
    names = readme_settings()
    assert len(names) == len(set(names)) > 60
    for name in ("SECRET_KEY", "EMAIL_HOST_PASSWORD", "NATS_ACCOUNT_STREAM_MAX_BYTES", "NATS_MONITOR_URL"):
        assert name in names


@pytest.mark.parametrize("name", sorted(set(readme_settings()) - set(NOT_PASSED)))
def test_a_readme_setting_set_in_docker_env_reaches_every_service_built_from_the_repository(name):
    sentinel = f"sentinel-{name.lower()}"
    by_name = services_with({name: sentinel})
    assert {"web", "worker", "beat", "migrate", "data_bridge", "signal_intake", "reference_feed"} <= set(by_name)
    for service_name, service in by_name.items():
        if name in MIGRATE_ONLY and service_name != "migrate":
            assert name not in service.environment, service_name
        else:
            assert service.environment.get(name) == sentinel, f"{service_name} does not get {name} from docker/.env"


@pytest.mark.parametrize("name", sorted(NOT_PASSED))
def test_a_setting_compose_keeps_out_is_in_the_readme_and_reaches_no_service(name):
    assert name in readme_settings(), f"{name} is no longer a README setting: drop it from NOT_PASSED"
    for service_name, service in services_with({name: "from-docker-env"}).items():
        assert name not in service.environment, service_name


def test_compose_passes_only_settings_the_readme_documents():
    assert app_env_keys() - set(readme_settings()) == set()


def test_env_example_offers_every_setting_compose_passes_and_nothing_else():
    offered = env_example_names()
    passed = app_env_keys() | MIGRATE_ONLY
    assert passed - offered == set(), "add these to docker/env.example"
    assert offered - passed - COMPOSE_ONLY == set(), "docker/env.example names what compose does not pass"
