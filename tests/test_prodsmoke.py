"""`make prod-smoke` (tests/prodsmoke.py): it reads docker/ as compose and the image would run it, and fails clearly.

The whole smoke runs in CI (`.ci/run`, `make prod-smoke`); these tests pin what it reads from the real
docker/compose.yaml and docker/Dockerfile, compose's variable substitution, and that a broken step ends the run with
exit 1 and the step's own error.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import prodsmoke
import pytest
from django.conf import settings
from prodsmoke import (
    COMPOSE,
    DOCKERFILE,
    SERVICE_CHECKS,
    SMOKE_PROFILES,
    FakePolygon,
    SmokeFailure,
    base_env,
    compose_balancer,
    compose_services,
    dockerfile_read,
    interpolate,
    process_env,
    smoke_services,
    smoke_variables,
    static_links,
    web_listen,
)

from suho import cluster

# as `make prod-smoke` runs it, from the checkout (where `binproto` is the package, not tests/binproto)
PRODSMOKE = [sys.executable, "-m", "tests.prodsmoke"]

SHELL = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/suho",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "NATS_URL": "nats://127.0.0.1:4222",
    "DEBUG": "1",  # a developer's shell: must not reach a production process
}


@pytest.fixture
def services():
    variables, _database = smoke_variables(SHELL)
    image = dockerfile_read(DOCKERFILE.read_text())
    return image, variables, {service.name: service for service in compose_services(COMPOSE.read_text(), image,
                                                                                     variables)}  # fmt: skip


def test_the_smoke_runs_composes_migrate_job_first_then_web_from_the_images_cmd_and_worker_and_beat(services):
    image, _variables, by_name = services
    # one-shot jobs first, then compose's order
    assert list(by_name) == ["migrate", "web", "worker", "beat", "data_bridge", "signal_intake", "reference_feed"]
    assert [name for name, service in by_name.items() if service.one_shot] == ["migrate"]
    migrate = " ".join(by_name["migrate"].argv)
    for step in ("manage.py db_setup", "manage.py migrate --database owner", "manage.py nats_setup"):
        assert step in migrate  # nats_setup: without the streams every account event waits in the outbox
    assert by_name["web"].argv == image.cmd
    assert by_name["web"].argv[:3] == ["python", "-m", "suho.server"]  # daphne with Suho's limits (decision 0012)
    assert "--proxy-headers" not in by_name["web"].argv  # X-Forwarded-For is read per TRUSTED_PROXY_HOPS instead
    assert by_name["web"].container_port == 8000
    assert by_name["worker"].argv[:4] == ["celery", "-A", "suho", "worker"]
    assert by_name["beat"].argv[:4] == ["celery", "-A", "suho", "beat"]
    assert by_name["worker"].healthcheck == ["python", "/app/docker/healthcheck.py", "worker"]


def test_every_service_compose_runs_is_one_the_smoke_starts_and_checks_and_every_check_is_of_one_it_runs(services):
    """The drift guard: a service added to compose (in any profile) needs a check in the smoke, and a check whose
    service left compose goes too."""
    _image, _variables, by_name = services
    assert set(by_name) == set(SERVICE_CHECKS)
    assert [s.name for s in smoke_services(list(by_name.values()))] == list(by_name)
    assert {profile for service in by_name.values() for profile in service.profiles} <= SMOKE_PROFILES


def test_a_service_compose_gains_without_a_check_in_the_smoke_fails_it(services):
    image, variables, _by_name = services
    grown = COMPOSE.read_text().replace("\nvolumes:\n", """
  ml_scorer:
    <<: *app
    command: ["python", "manage.py", "ml_scorer"]

volumes:
""", 1)  # fmt: skip
    with pytest.raises(SmokeFailure, match=r"compose runs ml_scorer, which the smoke checks nothing of"):
        smoke_services(compose_services(grown, image, variables))


def test_the_data_bridge_signal_intake_and_reference_feed_run_the_projects_own_commands(services):
    from django.core.management import get_commands

    _image, _variables, by_name = services
    commands = get_commands()
    for name, command in (("data_bridge", "data_bridge"), ("signal_intake", "signal_intake_nats"),
                          ("reference_feed", "reference_feed")):  # fmt: skip
        assert by_name[name].argv[:3] == ["python", "manage.py", command]
        assert command in commands, command
        assert by_name[name].container_port is None  # scalable: nothing published (compose --scale)
    assert by_name["reference_feed"].argv[3:] == ["--source", "polygon"]  # production: never the random walk
    assert by_name["reference_feed"].profiles == ("reference",)  # needs POLYGON_API_KEY: only when enabled


def test_no_service_but_web_inherits_the_images_health_check_which_reads_webs_port():
    import yaml

    specs = yaml.safe_load(COMPOSE.read_text())["services"]
    for name, spec in specs.items():
        if "build" in spec and name != "web":
            healthcheck = spec.get("healthcheck") or {}
            assert healthcheck.get("disable") or healthcheck.get("test"), name
    assert specs["data_bridge"]["healthcheck"]["test"][-1] == "data_bridge"
    assert specs["signal_intake"]["healthcheck"]["test"][-1] == "signal_intake"


def test_the_smoke_runs_bridge_mode_whatever_the_shell_says(services):
    variables, _database = smoke_variables({**SHELL, "INGEST_MODE": "direct"})
    assert variables["INGEST_MODE"] == "bridge"  # the EA's ticks must pass through the data_bridge service
    _image, _variables, by_name = services
    assert {service.environment["INGEST_MODE"] for service in by_name.values()} == {"bridge"}


def test_the_polygon_stand_in_serves_the_feed_and_refuses_a_wrong_key_as_polygon_does():
    from quotes.feeds import PolygonAuthError, PolygonForexFeed

    polygon = FakePolygon(api_key="right")
    polygon.start()
    try:

        async def first(api_key: str):
            feed = PolygonForexFeed(api_key=api_key, symbols=["EURUSD"], url=polygon.url, max_connects=1)
            async for tick in feed:
                return tick

        tick = asyncio.run(asyncio.wait_for(first("right"), 10))
        assert (tick.symbol, tick.bid, tick.ask) == ("EURUSD", 1.0949, 1.0951)
        assert polygon.subscribed == ["C.EUR/USD"]
        with pytest.raises(PolygonAuthError):
            asyncio.run(asyncio.wait_for(first("wrong"), 10))
    finally:
        polygon.stop()


def test_every_service_gets_composes_environment_and_only_migrate_the_superusers_url(services, tmp_path):
    image, variables, by_name = services
    assert variables["DATABASE_URL"] == "postgres://postgres@127.0.0.1:5432/suho_prodsmoke"
    for name, service in by_name.items():
        env = process_env(image, service, tmp_path)
        assert "DEBUG" not in env, name  # settings: off unless set
        assert env["SECRET_KEY"] == variables["SECRET_KEY"] and len(env["SECRET_KEY"]) >= 50
        assert env["ALLOWED_HOSTS"] == "127.0.0.1,localhost"
        assert env["DATABASE_URL"] == variables["DATABASE_URL"]
        assert env["DJANGO_SETTINGS_MODULE"] == "suho.settings"  # the image's ENV
        assert env["SUHO_STATE_DIR"] == str(tmp_path)
        assert ("DATABASE_ADMIN_URL" in env) == (name == "migrate")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A}", "a"),
        ("$A/$$B", "a/$B"),
        ("${MISSING:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${EMPTY-fallback}", ""),  # without the colon only an unset variable takes the default
        ("${MISSING:-postgres://u:${A}@db/x}", "postgres://u:a@db/x"),  # compose.yaml nests one
        ("${A:+set}${MISSING:+set}", "set"),
        ("${A:?never}", "a"),
    ],
)
def test_compose_variable_substitution(text, expected):
    assert interpolate(text, {"A": "a", "EMPTY": ""}) == expected


def test_a_required_variable_left_empty_fails_with_composes_message():
    with pytest.raises(SmokeFailure, match=r"SECRET_KEY is missing a value: set SECRET_KEY in docker/\.env"):
        interpolate("${SECRET_KEY:?set SECRET_KEY in docker/.env}", {"SECRET_KEY": ""})


def test_web_is_published_only_through_composes_balancer_which_mounts_the_haproxy_config_the_cluster_uses(services):
    """web exposes its port to lb and runs as replicas; lb (the one published port) mounts docker/haproxy.cfg,
    the file `make run-cluster` and the scale-out tests render (suho/cluster.py)."""
    _image, variables, by_name = services
    balancer = compose_balancer(COMPOSE.read_text(), COMPOSE.parent, variables)
    assert balancer is not None and balancer.name == "lb"
    assert balancer.config == cluster.HAPROXY_CONFIG
    assert balancer.environment == {"SUHO_LB_BIND": ":8000", "SUHO_LB_CHECK_HOST": "127.0.0.1"}
    assert (by_name["web"].container_port, by_name["web"].replicas) == (8000, 2)
    assert by_name["web"].environment["TRUSTED_PROXY_HOPS"] == "2"  # the TLS proxy, then lb's X-Forwarded-For
    assert "server 127.0.0.1" not in cluster.HAPROXY_CONFIG.read_text()
    assert "    server web2 127.0.0.1:5002\n" in cluster.haproxy_config([5001, 5002])


def test_web_listens_where_the_smoke_says_and_a_drift_from_composes_published_port_is_refused():
    cmd = ["daphne", "-b", "0.0.0.0", "-p", "8000", "--proxy-headers", "suho.asgi:application"]  # noqa: S104
    assert web_listen(cmd, 8000, 4321) == ["daphne", "-b", "127.0.0.1", "-p", "4321", "--proxy-headers",
                                           "suho.asgi:application"]  # fmt: skip
    with pytest.raises(SmokeFailure, match="compose publishes container port 9000, but web listens on 8000"):
        web_listen(cmd, 9000, 4321)


def test_static_links_are_the_pages_stylesheets_and_scripts_each_once():
    html = '<link href="/static/a.1.css"><script src="/static/b.js"></script><a href="/x/">x</a>'
    html += '<img src="/static/a.1.css">'
    assert static_links(html) == ["/static/a.1.css", "/static/b.js"]


def test_the_dockerfiles_collectstatic_step_runs_with_only_its_own_stand_ins(tmp_path):
    """The image build's step as written: settings need SECRET_KEY *and* ALLOWED_HOSTS with DEBUG off (the build
    failed on the second before)."""
    image = dockerfile_read(DOCKERFILE.read_text())
    env = {**base_env(), "STATIC_ROOT": str(tmp_path)}
    result = subprocess.run(["sh", "-c", image.collectstatic], env=env, cwd=settings.BASE_DIR, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "staticfiles.json").is_file()


def test_a_failing_step_ends_the_smoke_with_exit_1_and_the_steps_own_error(tmp_path):
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("python manage.py db_setup &&", "python manage.py no_such_step &&"))
    environ = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run([*PRODSMOKE, "--compose", str(broken)], env=environ,
                            cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "prod-smoke: FAILED: migrate exited with 1; its log" in result.stderr
    assert "Unknown command: 'no_such_step'" in result.stderr


def test_without_the_servers_urls_the_smoke_says_to_use_make():
    with pytest.raises(SmokeFailure, match="REDIS_URL is not set: run `make prod-smoke`"):
        smoke_variables({"DATABASE_URL": "postgres://x/suho"})


def test_paths_in_the_image_are_this_checkout():
    assert prodsmoke.app_path(["python", "/app/docker/healthcheck.py", "beat"]) == [
        "python", str(Path(settings.BASE_DIR) / "docker" / "healthcheck.py"), "beat"]  # fmt: skip


def test_a_database_out_of_reach_fails_in_one_line_naming_the_error():
    unreachable = "postgres://postgres@127.0.0.1:1/suho"
    environ = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    environ |= {"DATABASE_URL": unreachable, "DATABASE_ADMIN_URL": unreachable}
    result = subprocess.run(PRODSMOKE, env=environ, cwd=settings.BASE_DIR,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("prod-smoke: FAILED: OperationalError: connection failed:"), result.stderr
    assert "Traceback" not in result.stderr
