"""compose's three-node NATS profile (docker/compose.yaml `nats-cluster`, docker/nats-cluster.conf and .env) holds
together: the routes name the services that run the cluster configuration, each node has its own name and volume,
and with the profile's env file every service built from the repository gets all three servers and three replicas.
Docker is not needed: the configuration is checked by the nats-server the project installs (`-t`), the services as
`make prod-smoke` reads them (tests/prodsmoke.py)."""

from __future__ import annotations

import os
import re
import subprocess

import yaml
from prodsmoke import COMPOSE, DOCKERFILE, compose_services, dockerfile_read, interpolate, smoke_variables

from suho.bus import nats_servers
from suho.natscluster import nats_server_binary

CLUSTER_CONF = COMPOSE.parent / "nats-cluster.conf"
CLUSTER_ENV = COMPOSE.parent / "nats-cluster.env"
SHELL = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/suho",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "NATS_URL": "nats://127.0.0.1:4222",
}


def cluster_env() -> dict[str, str]:
    lines = (line.strip() for line in CLUSTER_ENV.read_text().splitlines())
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def cluster_nodes(services: dict, variables: dict) -> dict[str, dict]:
    """The NATS services that run cluster.conf with these variables (and are started: profile or none)."""
    profiles = set(variables.get("COMPOSE_PROFILES", "").split(","))
    return {
        name: spec
        for name, spec in services.items()
        if spec.get("image", "").startswith("nats:")
        and interpolate(" ".join(spec["command"]), variables).endswith("/etc/nats/cluster.conf")
        and (not spec.get("profiles") or profiles & set(spec["profiles"]))
    }


def test_the_profile_runs_three_routed_nodes_each_with_its_own_name_and_volume():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    nodes = cluster_nodes(services, cluster_env())
    assert sorted(nodes) == ["nats", "nats-2", "nats-3"]
    routes = re.findall(r"nats-route://([\w-]+):6222", CLUSTER_CONF.read_text())
    assert sorted(routes) == sorted(nodes)
    assert len({spec["environment"]["NATS_SERVER_NAME"] for spec in nodes.values()}) == 3
    data_volumes = [next(v for v in spec["volumes"] if v.endswith(":/data")) for spec in nodes.values()]
    assert len(set(data_volumes)) == 3
    assert all(any(v.endswith(":/etc/nats/cluster.conf:ro") for v in spec["volumes"]) for spec in nodes.values())
    assert cluster_nodes(services, {}) == {}, "without the profile's env file, nats runs the one-server config"


def test_the_cluster_configuration_is_valid_for_nats_server():
    checked = subprocess.run([nats_server_binary(), "-c", str(CLUSTER_CONF), "-t"], capture_output=True, text=True,
                             env={**os.environ, "NATS_SERVER_NAME": "suho-nats-1"}, timeout=30)  # fmt: skip
    assert checked.returncode == 0, checked.stderr


def test_with_the_profile_every_service_gets_all_three_servers_and_three_replicas():
    variables, _database = smoke_variables({**SHELL, **cluster_env()})
    image = dockerfile_read(DOCKERFILE.read_text())
    services = compose_services(COMPOSE.read_text(), image, variables)
    assert services
    for service in services:
        assert nats_servers(service.environment["NATS_URL"]) == [
            "nats://nats:4222", "nats://nats-2:4222", "nats://nats-3:4222"
        ], service.name  # fmt: skip
        assert service.environment["NATS_STREAM_REPLICAS"] == "3", service.name
