"""`make prod-smoke`: the compose deployment's own commands, run as local processes, then used as a user would.

Docker is not needed, and nothing here repeats what docker/ says: the services, their commands, environments and
order come from docker/compose.yaml, the image's CMD, ENV and static-files build step from docker/Dockerfile
(decision 0016). So a change there is what the smoke runs, and a command that breaks there breaks here.

What runs, in compose's order, against the servers the environment names (`make prod-smoke` starts the embedded
ones for what is unset): the Dockerfile's collectstatic step; the one-shot jobs (services others wait for with
`service_completed_successfully`: `migrate`); then every other service built from the repository (web, worker,
beat, data_bridge, signal_intake, and reference_feed of the `reference` profile) with compose's environment,
interpolated as compose does: DEBUG unset (off), a generated SECRET_KEY, ALLOWED_HOSTS, role passwords,
INGEST_MODE=bridge; web as compose's `deploy.replicas` processes behind compose's load balancer (`lb`: Debian's
HAProxy with docker/haproxy.cfg, its servers the local web processes; one web alone, said so, when HAProxy is not
installed). Then, through the balancer, as a user and an EA would: /healthz and /readyz, the portal's and admin's
login pages with their static files, a trader's login and account page, the operator's admin login (second factor
included) and account list, an EA that connects with its API key, streams ticks that land in the database through
the data bridge, receives a signal posted to the API by the ML engine's key, opens the trade and gets its EVENT_ACK
once the trade is stored, the trade on JetStream, then a second signal requested on NATS (`ml.signals`, the signal
intake) executed too; with replicas, SIGTERM to the web process serving the EA (it drains: the EA is closed with
1012 and reconnects through the balancer to another); reference quotes from a local stand-in for Polygon's
WebSocket stored by the reference feed; and the worker's and beat's compose health checks. Every service compose
runs must have passed its check (SERVICE_CHECKS). Then everything stops. Any failure ends the run with exit 1 and
one line saying what failed (and where the service logs are).

Where it differs from compose, on purpose: PostgreSQL, Redis and NATS are the configured servers, not containers;
the database is DATABASE_URL's name + `_prodsmoke`, made fresh and dropped at the end (`--keep` keeps it); roles are
`suho_prodsmoke_*` unless DB_*_USER is set (db_setup changes roles server-wide: the smoke leaves other checkouts'
roles alone); SUHO_TIMESCALEDB is `auto` unless set (compose's `on` assumes its own TimescaleDB container); each
web process and the balancer listen on 127.0.0.1 and a free port instead of 0.0.0.0:8000; requests carry the
`X-Forwarded-Proto: https` the TLS proxy in front would add; paths under the image's /app are this checkout;
INGEST_MODE is `bridge` (compose's default is direct) so the EA's ticks must pass through the data_bridge service;
POLYGON_WS_URL is always the local stand-in (the smoke never reaches the network), with a generated POLYGON_API_KEY
unless one is set.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import logging
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit
from uuid import UUID

from accounts.totp import totp_code  # plain hashing, no Django

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker" / "compose.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
APP_DIR = "/app"  # the image's WORKDIR: the checkout here
ALLOWED_HOST = "127.0.0.1"
DATABASE_SUFFIX = "_prodsmoke"
ROLE_PREFIX = "suho_prodsmoke_"

START_S = 60.0  # a service's start, a health check's wait
STEP_S = 20.0  # one step of the flow (a row to land, a signal to arrive)
STOP_S = 20.0
HTTP_TIMEOUT_S = 10.0
SMOKE_PROFILES = frozenset({"reference"})  # compose profiles whose services the smoke runs as well

# What the smoke checks of each service compose runs. A service compose runs that is not here fails the run (and
# tests/test_prodsmoke.py): a new service needs a check, not only a line in compose.yaml.
SERVICE_CHECKS = {
    "migrate": "db_setup, migrate and nats_setup exit 0",
    "web": "/healthz, /readyz, pages with static files, logins, the EA's WebSocket, POST /api/signals/",
    "worker": "compose's health check (a Celery ping answered by this worker)",
    "beat": "compose's health check (the broker)",
    "data_bridge": "with INGEST_MODE=bridge the EA's ticks land in mt5_broker_quotes through it (suho_bridge_applied)",
    "signal_intake": "a signal requested on NATS (ml.signals) with the ML engine's key is executed by the EA",
    "reference_feed": "quotes from a local stand-in for Polygon's WebSocket land in mt5_reference_quotes",
}
STATIC_LINK = re.compile(r"""(?:href|src)=["'](/static/[^"']+)["']""")
CSRF_INPUT = re.compile(r"""name=["']csrfmiddlewaretoken["']\s+value=["']([^"']+)["']""")


_STARTED = time.monotonic()


def say(line: str) -> None:
    print(f"prod-smoke [{time.monotonic() - _STARTED:5.1f} s] {line}", flush=True)


class SmokeFailure(Exception):
    """What failed, in one line for the operator."""


# --- reading docker/: compose's interpolation, its services, the Dockerfile ---------------------------------------


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's variable substitution: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
    `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}`, defaults themselves interpolated (compose.yaml
    nests one). A required variable that is missing raises SmokeFailure with compose's own error text."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            out.append(_substitute(text[i + 2 : end], variables))
            i = end + 1
        elif match := re.compile(r"\$([A-Za-z_]\w*)").match(text, i):
            out.append(variables.get(match[1], ""))
            i = match.end()
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for index in range(start, len(text)):
        if text.startswith("${", index):
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    raise SmokeFailure(f"unclosed ${{ in {text!r}")


def _substitute(expression: str, variables: Mapping[str, str]) -> str:
    match = re.fullmatch(r"([A-Za-z_]\w*)(?:(:?[-?+])(.*))?", expression, re.DOTALL)
    if match is None:
        raise SmokeFailure(f"not a compose variable: ${{{expression}}}")
    name, operator, argument = match[1], match[2] or "", match[3] or ""
    value = variables.get(name)
    missing = value is None or (operator.startswith(":") and value == "")
    if operator.endswith("-"):
        return interpolate(argument, variables) if missing else value
    if operator.endswith("?"):
        if missing:
            raise SmokeFailure(f"required variable {name} is missing a value: {interpolate(argument, variables)}")
        return value
    if operator.endswith("+"):
        return "" if missing else interpolate(argument, variables)
    return value or ""


@dataclass(frozen=True)
class Service:
    """One service built from this repository, as compose would start it."""

    name: str
    argv: list[str]
    environment: dict[str, str]
    one_shot: bool  # others wait for it to complete (compose: service_completed_successfully)
    container_port: int | None  # the port compose publishes or exposes (to the load balancer), if any
    healthcheck: list[str] | None  # compose's CMD-form health check, without "CMD"
    profiles: tuple[str, ...] = ()  # compose starts it only when one of these is enabled (none: always)
    replicas: int = 1  # compose's deploy.replicas


@dataclass(frozen=True)
class Balancer:
    """compose's load balancer: the service that mounts docker/haproxy.cfg, and its environment."""

    name: str
    config: Path
    environment: dict[str, str]


@dataclass(frozen=True)
class Image:
    """What docker/Dockerfile's final stage gives every container, and its static-files build step."""

    cmd: list[str]
    entrypoint: list[str]
    env: dict[str, str]
    collectstatic: str  # the RUN instruction, for `sh -c`


def dockerfile_read(text: str) -> Image:
    """The final stage's CMD, ENTRYPOINT and ENV, and the RUN step (any stage) that collects static files."""
    lines, pending = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    cmd: list[str] = []
    entrypoint: list[str] = []
    env: dict[str, str] = {}
    collectstatic = ""
    for line in lines:
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            cmd, entrypoint, env = [], [], {}  # a new stage starts from its base image
        elif instruction == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
        elif instruction in {"CMD", "ENTRYPOINT"}:
            argv = json.loads(rest) if rest.lstrip().startswith("[") else ["/bin/sh", "-c", rest]
            if instruction == "CMD":
                cmd = argv
            else:
                entrypoint = argv
        elif instruction == "RUN" and "collectstatic" in rest:
            collectstatic = rest.strip()
    if not cmd:
        raise SmokeFailure("docker/Dockerfile has no CMD in its final stage")
    if not collectstatic:
        raise SmokeFailure("docker/Dockerfile has no RUN step with collectstatic: whitenoise would serve nothing")
    return Image(cmd=cmd, entrypoint=entrypoint, env=env, collectstatic=collectstatic)


def compose_services(text: str, image: Image, variables: Mapping[str, str]) -> list[Service]:
    """The services built from this repository, one-shot jobs first (in file order), then the rest."""
    import yaml  # PyYAML resolves compose's anchors and `<<` merge keys

    document = yaml.safe_load(text)
    services = document.get("services") or {}
    awaited = {
        dependency
        for spec in services.values()
        for dependency, condition in _depends_on(spec).items()
        if condition == "service_completed_successfully"
    }
    found = []
    for name, spec in services.items():
        if "build" not in spec:
            continue  # timescaledb, redis, nats: the configured servers stand in for them
        command = _argv(spec.get("command"), variables) or image.cmd
        entrypoint = _argv(spec.get("entrypoint"), variables) or image.entrypoint
        environment = spec.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.partition("=")[::2] for item in environment)
        healthcheck = (spec.get("healthcheck") or {}).get("test")
        found.append(
            Service(
                name=name,
                argv=[*entrypoint, *command],
                environment={key: interpolate(str(value), variables) for key, value in environment.items()},
                one_shot=name in awaited,
                container_port=_container_port([*(spec.get("ports") or []), *(spec.get("expose") or [])], variables),
                healthcheck=[interpolate(part, variables) for part in healthcheck[1:]]
                if isinstance(healthcheck, list) and healthcheck[:1] == ["CMD"]
                else None,
                profiles=tuple(spec.get("profiles") or ()),
                replicas=int(interpolate(str((spec.get("deploy") or {}).get("replicas", 1)), variables)),
            )
        )
    if not found:
        raise SmokeFailure("docker/compose.yaml has no service built from the repository")
    return sorted(found, key=lambda service: not service.one_shot)


def compose_balancer(text: str, compose_dir: Path, variables: Mapping[str, str]) -> Balancer | None:
    """The service that mounts a haproxy.cfg from docker/ (compose's `lb`), if any."""
    import yaml

    for name, spec in (yaml.safe_load(text).get("services") or {}).items():
        for volume in spec.get("volumes") or []:
            source = str(volume).split(":", 1)[0]
            if source.endswith("haproxy.cfg"):
                environment = spec.get("environment") or {}
                environment = {key: interpolate(str(value), variables) for key, value in environment.items()}
                return Balancer(name=name, config=(compose_dir / source).resolve(), environment=environment)
    return None


def _depends_on(spec: dict) -> dict[str, str]:
    depends = spec.get("depends_on") or {}
    if isinstance(depends, list):
        return {name: "service_started" for name in depends}
    return {name: (options or {}).get("condition", "service_started") for name, options in depends.items()}


def _argv(value, variables: Mapping[str, str]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(interpolate(value, variables))
    return [interpolate(str(part), variables) for part in value]


def _container_port(ports: list, variables: Mapping[str, str]) -> int | None:
    for entry in ports:
        published = interpolate(str(entry), variables)
        return int(published.rsplit(":", 1)[-1].split("/")[0])
    return None


# --- the environment compose would be given: this shell's, plus what a new operator fills in docker/.env ----------


def smoke_variables(environ: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """Compose's interpolation variables for the smoke, and the smoke database's name."""
    database_url = environ.get("DATABASE_URL")
    for name in ("DATABASE_URL", "REDIS_URL", "NATS_URL"):
        if not environ.get(name):
            raise SmokeFailure(f"{name} is not set: run `make prod-smoke`, which starts embedded servers for it")
    parts = urlsplit(database_url)
    database = (parts.path.lstrip("/") or "suho") + DATABASE_SUFFIX
    generated = {
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ALLOWED_HOSTS": f"{ALLOWED_HOST},localhost",
        "LB_CHECK_HOST": ALLOWED_HOST,
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "SUHO_TIMESCALEDB": "auto",
        **{f"DB_{role}_USER": ROLE_PREFIX + role.lower() for role in ("SERVICE", "OWNER", "OPERATOR")},
        **{f"DB_{role}_PASSWORD": secrets.token_urlsafe(24) for role in ("SERVICE", "OWNER", "OPERATOR")},
        "POLYGON_API_KEY": secrets.token_urlsafe(16),
    }
    variables = {**generated, **{key: value for key, value in environ.items() if value}}
    variables["INGEST_MODE"] = "bridge"  # the EA's ticks must pass through the data_bridge service
    variables["DATABASE_URL"] = parts._replace(path=f"/{database}").geturl()
    variables["DATABASE_ADMIN_URL"] = environ.get("DATABASE_ADMIN_URL") or database_url
    return variables, database


def base_env() -> dict[str, str]:
    """Nothing from this shell but PATH (the virtualenv first, as the image's /opt/venv) and HOME."""
    return {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": os.environ.get("HOME", "/"),
        "LANG": "C.UTF-8",
    }


def process_env(image: Image, service: Service, state_dir: Path) -> dict[str, str]:
    """A container's environment: the image's ENV, then the service's. SUHO_STATE_DIR is the smoke's own directory
    (the image's /var/lib/suho, beat's volume)."""
    env = {**base_env(), **{key: value for key, value in image.env.items() if key != "PATH"}, **service.environment}
    env["SUHO_STATE_DIR"] = str(state_dir)
    return env


def app_path(argv: list[str]) -> list[str]:
    """Arguments naming a path in the image's /app name the same path in this checkout."""
    return [str(ROOT / part[len(APP_DIR) + 1 :]) if part.startswith(APP_DIR + "/") else part for part in argv]


def web_listen(argv: list[str], container_port: int, port: int) -> list[str]:
    """daphne's `-b`/`-p` set to 127.0.0.1 and `port`; the port compose publishes must be the one it listens on."""
    out, listens_on = list(argv), None
    for index, part in enumerate(argv[:-1]):
        if part in {"-p", "--port"}:
            listens_on = int(argv[index + 1])
            out[index + 1] = str(port)
        elif part in {"-b", "--bind"}:
            out[index + 1] = ALLOWED_HOST
    if listens_on is None:
        raise SmokeFailure(f"the web command {shlex.join(argv)} names no -p PORT")
    if listens_on != container_port:
        raise SmokeFailure(f"compose publishes container port {container_port}, but web listens on {listens_on}")
    return out


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((ALLOWED_HOST, 0))
        return probe.getsockname()[1]


# --- processes ----------------------------------------------------------------------------------------------------


@dataclass
class Running:
    name: str
    process: subprocess.Popen
    log: Path

    def tail(self) -> str:
        return log_tail(self.log)


def log_tail(log: Path, lines: int = 12) -> str:
    try:
        last = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-lines:]
    except OSError:
        last = []
    return f"its log {log} ends:\n" + "\n".join(last)


@dataclass
class Stack:
    log_dir: Path
    running: list[Running] = field(default_factory=list)
    checked: set[str] = field(default_factory=set)  # services whose SERVICE_CHECKS entry held

    def passed(self, service: str, what: str) -> None:
        say(f"{service}: {what}")
        self.checked.add(service)

    def run_once(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = self.log_dir / f"{name}.log"
        say(f"{name}: {shlex.join(argv)}")
        with log.open("wb") as out:
            result = subprocess.run(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=300)
        if result.returncode != 0:
            raise SmokeFailure(f"{name} exited with {result.returncode}; {log_tail(log)}")

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Running:
        log = self.log_dir / f"{name}.log"
        say(f"{name}: {shlex.join(argv)}")
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        running = Running(name, process, log)
        self.running.append(running)
        return running

    def check_alive(self) -> None:
        for service in self.running:
            if service.process.poll() is not None:
                raise SmokeFailure(f"{service.name} exited with {service.process.returncode}; {service.tail()}")

    def stop(self) -> list[str]:
        """SIGTERM to each process group, as compose does; what did not stop in time is killed and reported."""
        stopping = time.monotonic()
        for service in self.running:
            if service.process.poll() is None:
                os.killpg(service.process.pid, signal.SIGTERM)
        unclean, took = [], []
        for service in self.running:
            try:
                service.process.wait(timeout=max(0.0, stopping + STOP_S - time.monotonic()))
                took.append(f"{service.name} {time.monotonic() - stopping:.1f} s")
            except subprocess.TimeoutExpired:
                os.killpg(service.process.pid, signal.SIGKILL)
                service.process.wait()
                unclean.append(f"{service.name} did not stop within {STOP_S:.0f} s of SIGTERM")
        self.running.clear()
        if took:
            say(f"stopped on SIGTERM: {', '.join(took)}")
        return unclean


def until(check: Callable[[], object], what: str, timeout: float = STEP_S, stack: Stack | None = None):
    """Poll `check` until it returns something truthy; meanwhile a service that died ends the wait."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        if stack is not None:
            stack.check_alive()
        try:
            result = check()
        except (OSError, http.client.HTTPException, SmokeFailure) as exc:
            result, last_error = None, f" (last: {exc})"
        if result:
            return result
        time.sleep(0.2)
    raise SmokeFailure(f"timed out after {timeout:.0f} s waiting for {what}{last_error}")


# --- a browser behind the TLS proxy -------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: str


class Browser:
    """HTTP to web as the TLS proxy forwards it (X-Forwarded-Proto: https), keeping cookies as a browser would over
    https (Secure cookies included) and sending the Origin a form post from the site carries."""

    def __init__(self, port: int):
        self.port = port
        self.origin = f"https://{ALLOWED_HOST}:{port}"
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> Response:
        connection = http.client.HTTPConnection(ALLOWED_HOST, self.port, timeout=HTTP_TIMEOUT_S)
        sent = {"X-Forwarded-Proto": "https", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            text = response.read().decode("utf-8", "replace")
        finally:
            connection.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return Response(response.status, response.headers, text)

    def get(self, path: str, expect: int = 200) -> Response:
        response = self.request("GET", path)
        if response.status != expect:
            raise SmokeFailure(f"GET {path} answered {response.status}, expected {expect}: {response.body[:300]!r}")
        return response

    def post_form(self, path: str, fields: dict[str, str]) -> Response:
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": self.origin,
                   "Referer": self.origin + path}  # fmt: skip
        return self.request("POST", path, urlencode(fields).encode(), headers)

    def post_json(self, path: str, payload: dict, token: str) -> Response:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        return self.request("POST", path, json.dumps(payload).encode(), headers)


def form_login(browser: Browser, path: str, fields: dict[str, str]) -> None:
    """Fill in a login form as a browser does (its CSRF token, the site's Origin); a login redirects (302)."""
    page = browser.get(path)
    token = CSRF_INPUT.search(page.body)
    if token is None:
        raise SmokeFailure(f"{path} has no CSRF token in its form")
    answer = browser.post_form(path, {"csrfmiddlewaretoken": token[1], **fields})
    if answer.status != 302:
        raise SmokeFailure(f"the login at {path} answered {answer.status}, expected 302: {answer.body[:300]!r}")


def static_links(html: str) -> list[str]:
    """The /static/ files a page links (stylesheets, scripts, images), each once, in page order."""
    return list(dict.fromkeys(STATIC_LINK.findall(html)))


def page_with_static(browser: Browser, path: str) -> Response:
    """The page answers 200 and every static file it links answers 200 too (whitenoise, collected at build)."""
    page = browser.get(path)
    links = static_links(page.body)
    if not links:
        raise SmokeFailure(f"{path} links no /static/ file: the smoke cannot tell static files are served")
    for link in links:
        browser.get(link)
    say(f"GET {path} 200, its {len(links)} static file(s) 200")
    return page


# --- Polygon's forex WebSocket, on 127.0.0.1 -----------------------------------------------------------------------

POLYGON_QUOTES = ((1.0949, 1.0951), (1.0950, 1.0952))  # EUR/USD, what the stand-in sends after the subscribe


class FakePolygon:
    """Polygon's forex WebSocket as the reference feed meets it (`connected`, auth, subscribe, then `C` quotes), on a
    thread and loop of its own: compose's reference_feed command runs unchanged without the network. A key other
    than the one given is refused as Polygon refuses it (the feed then exits, which the smoke sees)."""

    def __init__(self, api_key: str):
        self.api_key = api_key
        self.port: int | None = None
        self.subscribed: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="prod-smoke-polygon", daemon=True)
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"ws://{ALLOWED_HOST}:{self.port}"

    async def _session(self, ws) -> None:
        await ws.send(json.dumps([{"ev": "status", "status": "connected", "message": "Connected Successfully"}]))
        auth = json.loads(await ws.recv())
        if auth.get("action") != "auth" or auth.get("params") != self.api_key:
            await ws.send(json.dumps([{"ev": "status", "status": "auth_failed", "message": "authentication failed"}]))
            return
        await ws.send(json.dumps([{"ev": "status", "status": "auth_success", "message": "authenticated"}]))
        self.subscribed.append(json.loads(await ws.recv()).get("params", ""))
        now_ms = time.time_ns() // 1_000_000
        await ws.send(json.dumps([{"ev": "C", "x": 48, "p": "EUR/USD", "b": bid, "a": ask, "t": now_ms + index}
                                  for index, (bid, ask) in enumerate(POLYGON_QUOTES)]))  # fmt: skip
        await ws.wait_closed()

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self._stop = asyncio.Event()
        quiet = logging.getLogger("prodsmoke.polygon")  # websockets logs every connection at INFO
        quiet.setLevel(logging.WARNING)
        async with serve(self._session, ALLOWED_HOST, 0, logger=quiet) as server:
            self.port = server.sockets[0].getsockname()[1]
            self.ready.set()
            await self._stop.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(START_S):
            raise SmokeFailure("the stand-in for Polygon's WebSocket did not start")

    def stop(self) -> None:
        if self.thread.is_alive() and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
            self.thread.join(STOP_S)


# --- the EA: the reference EA (eaclient/simulated.py) on a loop of its own -----------------------------------------


class EAThread:
    """A SimulatedEA running in a thread (its own event loop), so the checks here stay plain blocking code."""

    def __init__(self, url: str, account_id: UUID, api_key: str):
        from eaclient.simulated import SimulatedEA, SimulatorConfig

        config = SimulatorConfig(url=url, account_id=account_id, api_key=api_key, symbols=("EURUSD",),
                                 ticks_per_second=0.0, balance_interval_s=1.0, heartbeat_interval_s=1.0)  # fmt: skip
        self.ea = SimulatedEA(config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="prod-smoke-ea", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.ea.run())

    def start(self) -> None:
        self.thread.start()

    def call(self, coroutine, timeout: float = HTTP_TIMEOUT_S):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.ea.stop)
            self.thread.join(STOP_S)


# --- the run --------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.prodsmoke", description=__doc__.splitlines()[0])
    parser.add_argument("--compose", type=Path, default=COMPOSE)
    parser.add_argument("--dockerfile", type=Path, default=DOCKERFILE)
    parser.add_argument("--keep", action="store_true", help="keep the smoke database afterwards")
    options = parser.parse_args(argv)
    try:
        smoke(options.compose, options.dockerfile, keep=options.keep)
    except SmokeFailure as exc:
        print(f"prod-smoke: FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    except Exception as exc:  # noqa: BLE001 — a server out of reach, say: one line too, naming the error
        print(f"prod-smoke: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    say("passed")
    return 0


def smoke_services(services: list[Service]) -> list[Service]:
    """The services compose starts with the smoke's profiles enabled; each must have a check in SERVICE_CHECKS."""
    run = [s for s in services if not s.profiles or SMOKE_PROFILES & set(s.profiles)]
    unchecked = [s.name for s in run if s.name not in SERVICE_CHECKS]
    if unchecked:
        raise SmokeFailure(f"compose runs {', '.join(unchecked)}, which the smoke checks nothing of: add a check "
                           "(tests/prodsmoke.py, SERVICE_CHECKS)")  # fmt: skip
    return run


def smoke(compose_path: Path, dockerfile_path: Path, *, keep: bool = False) -> None:
    variables, database = smoke_variables(os.environ)
    polygon = FakePolygon(api_key=variables["POLYGON_API_KEY"])
    polygon.start()
    variables["POLYGON_WS_URL"] = polygon.url  # never the real Polygon
    image = dockerfile_read(dockerfile_path.read_text())
    services = smoke_services(compose_services(compose_path.read_text(), image, variables))
    state_dir = ROOT / ".state" / "prodsmoke"
    state_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(log_dir=state_dir)
    admin_url = variables["DATABASE_ADMIN_URL"]

    from suho.dbsetup import database_drop

    database_drop(admin_url=admin_url, database=database)  # a first deployment: nothing from an earlier run
    try:
        stack.run_once("build-collectstatic", ["sh", "-c", image.collectstatic], base_env())
        for service in (s for s in services if s.one_shot):
            stack.run_once(service.name, app_path(service.argv), process_env(image, service, state_dir))
            log = (state_dir / f"{service.name}.log").read_text(errors="replace")
            for line in (line for line in log.splitlines() if line.startswith("database ready:")):
                say(f"{service.name}: {line}")  # which path db_setup took: TimescaleDB or plain PostgreSQL
            stack.passed(service.name, "completed")
        long_running = [s for s in services if not s.one_shot]
        port = web_start(stack, image, long_running, state_dir,
                         compose_balancer(compose_path.read_text(), compose_path.parent, variables))  # fmt: skip
        web_env = process_env(image, next(s for s in long_running if s.container_port is not None), state_dir)
        flow(stack, port, web_env, state_dir, {s.name for s in long_running}, polygon)
        health_checks(stack, image, long_running, state_dir)
        unchecked = [s.name for s in services if s.name not in stack.checked]
        if unchecked:
            raise SmokeFailure("no check passed for " + "; ".join(f"{n} ({SERVICE_CHECKS[n]})" for n in unchecked))
    finally:
        unclean = stack.stop()
        polygon.stop()
        if not keep:
            database_drop(admin_url=admin_url, database=database)
            say(f"database {database} dropped")
    if unclean:
        raise SmokeFailure("; ".join(unclean))


def web_start(stack: Stack, image: Image, services: list[Service], state_dir: Path, balancer: Balancer | None) -> int:
    """Start the long-running services; web as compose's replicas behind its balancer (HAProxy with compose's
    docker/haproxy.cfg, the local processes as its servers: suho/cluster.py), or one web alone when HAProxy is not
    installed. Returns the port HTTP and the EA go to."""
    from suho import cluster

    behind = balancer is not None and cluster.haproxy_available()
    if balancer is not None and not behind:
        say(f"{cluster.HAPROXY_MISSING}; one web process without {balancer.name}")
    web_ports = []
    for service in services:
        argv, env = app_path(service.argv), process_env(image, service, state_dir)
        if service.container_port is None:
            stack.start(service.name, argv, env)
            continue
        replicas = max(service.replicas, 1) if behind else 1
        for replica in range(1, replicas + 1):
            web_ports.append(free_port())
            name = service.name if replicas == 1 else f"{service.name}-{replica}"
            stack.start(name, web_listen(argv, service.container_port, web_ports[-1]), env)
    if not web_ports:
        raise SmokeFailure("no service in docker/compose.yaml publishes or exposes a port: nothing serves HTTP")
    if not behind:
        return web_ports[0]
    port = free_port()
    config = state_dir / "haproxy.cfg"
    config.write_text(cluster.haproxy_config(web_ports, source=balancer.config))
    env = {**base_env(), **balancer.environment, "SUHO_LB_BIND": f"127.0.0.1:{port}"}
    stack.start(balancer.name, [str(cluster.HAPROXY), "-db", "-f", str(config)], env)
    say(f"{len(web_ports)} web processes behind {balancer.name} (HAProxy) on port {port}")
    return port


def flow(
    stack: Stack, port: int, web_env: dict[str, str], state_dir: Path, running: set[str], polygon: FakePolygon
) -> None:
    """What a user, the ML engine and an EA do against the running deployment; `running` names compose's services
    that were started (a check of a service compose does not run is skipped, and SERVICE_CHECKS says so)."""
    browser = Browser(port)
    until(lambda: browser.request("GET", "/healthz").status == 200, "web's /healthz", START_S, stack)
    browser.get("/readyz")
    say("/healthz and /readyz 200")
    page_with_static(browser, "/accounts/login/")
    page_with_static(browser, "/admin/login/")

    # The operator's first steps, as `docker compose exec web python manage.py …` would run them.
    demo_password, admin_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    seed_env = {**web_env, "DEMO_PASSWORD": demo_password, "DEMO_ADMIN_PASSWORD": admin_password}
    stack.run_once("exec-seed_demo", [sys.executable, "manage.py", "seed_demo"], seed_env)
    account_id, api_key = (state_dir / "demo_ea.txt").read_text().split()
    seeded = (state_dir / "exec-seed_demo.log").read_text()
    stack.run_once("exec-ml_engine_key_create", [sys.executable, "manage.py", "ml_engine_key_create", "--tenant",
                                                 "demo"], web_env)  # fmt: skip
    ml_key = (state_dir / "exec-ml_engine_key_create.log").read_text().strip().splitlines()[-1]

    # The trader signs in and sees the account (the service role, under row-level security).
    form_login(browser, "/accounts/login/", {"username": "demo", "password": demo_password})
    page_with_static(browser, f"/portal/accounts/{account_id}/")

    # The operator signs in to the admin (the operator role), with the second factor seed_demo enrolled if any.
    operator = Browser(port)
    otp = re.search(r"otpauth://\S*[?&]secret=([A-Z2-7]+)", seeded)
    fields = {"username": "admin", "password": admin_password} | ({"otp_code": totp_code(otp[1])} if otp else {})
    form_login(operator, "/admin/login/?next=/admin/", fields)
    listed = operator.get("/admin/accounts/mt5account/")
    if account_id not in listed.body:
        raise SmokeFailure("the admin's MT5 account list does not show the demo account")
    say("the operator signed in to the admin and sees the demo account")

    # Django for the database checks, on the web's own settings (the service role, tenant context) and nothing of
    # this shell's (a SUHO_TESTING or DEBUG here would change them).
    os.environ.clear()
    os.environ.update(web_env)
    import django

    django.setup()
    ea = EAThread(f"ws://{ALLOWED_HOST}:{port}/ws/ea/", UUID(account_id), api_key)
    ea.start()
    try:
        ea_flow(stack, browser, ea, UUID(account_id), ml_key, web_env, running)
        drain_flow(stack, ea, UUID(account_id))
    finally:
        ea.stop()
    stack.passed("web", "pages, logins, the EA's WebSocket and POST /api/signals/ all answered")
    if "reference_feed" in running:
        reference_feed_check(stack, polygon)


def drain_flow(stack: Stack, ea: EAThread, account_id: UUID) -> None:
    """With web replicas behind the balancer: SIGTERM the one serving the EA, as a rolling deploy would. It must
    close the EA with 1012 and exit 0; the EA reconnects through the balancer to another replica (decision 0018)."""
    from accounts.models import MT5Account
    from suho.routers import operator_path

    def serving_pid() -> int | None:
        with operator_path():
            node = MT5Account.objects.get(account_id=account_id).live_session_node
        return int(node.rsplit("-", 2)[1]) if node else None

    webs = {running.process.pid: running for running in stack.running if running.name.startswith("web-")}
    if len(webs) < 2:
        return
    serving = webs.get(serving_pid())
    if serving is None:
        raise SmokeFailure(f"the EA's live session is on none of the web processes {sorted(webs)}")
    counters = ea.ea.counters
    connects = counters.connects
    os.killpg(serving.process.pid, signal.SIGTERM)
    try:
        code = serving.process.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        raise SmokeFailure(f"{serving.name} did not stop within {STOP_S:.0f} s of SIGTERM; {serving.tail()}") from None
    stack.running.remove(serving)
    if code != 0:
        raise SmokeFailure(f"{serving.name} exited with {code} after SIGTERM; {serving.tail()}")
    until(lambda: counters.last_close.startswith("1012"), "the EA's SESSION_CLOSING 1012", stack=stack)
    until(lambda: counters.connects > connects and serving_pid() in webs and serving_pid() != serving.process.pid,
          "the EA reconnected through the balancer to another web process", stack=stack)  # fmt: skip
    say(f"{serving.name} stopped on SIGTERM, drained: the EA was closed with 1012 and is back on another process")


def health_checks(stack: Stack, image: Image, services: list[Service], state_dir: Path) -> None:
    """Compose's own health checks of the services that listen on no port of ours (worker: a Celery ping answered
    by this worker; beat: the broker). web's check reads a fixed port 8000; /healthz was checked above instead."""
    for service in services:
        if service.healthcheck and service.container_port is None:
            check, env = app_path(service.healthcheck), process_env(image, service, state_dir)
            until(lambda c=check, e=env: _healthy(c, e), f"{service.name}'s compose health check", START_S, stack)
            stack.passed(service.name, "compose health check passed")


def _healthy(argv: list[str], env: dict[str, str]) -> bool:
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, timeout=30).returncode == 0


def ea_flow(
    stack: Stack, browser: Browser, ea: EAThread, account_id: UUID, ml_key: str, web_env: dict[str, str],
    running: set[str],
) -> None:  # fmt: skip
    from django.utils import timezone

    from accounts.models import MT5Account
    from quotes.models import BrokerQuote
    from signals.models import TradingSignal
    from suho.routers import operator_path
    from suho.streams import stream_replay
    from suho.tenancy import tenant_context
    from trading.models import TradeOrder

    with operator_path():
        tenant_id = MT5Account.objects.get(account_id=account_id).tenant_id
    counters = ea.ea.counters
    until(lambda: counters.connects, f"the EA's AUTH_RESULT (last refusal: {counters.last_refusal!r})", stack=stack)
    say("EA authenticated with its API key over /ws/ea/")

    for bid, ask in ((1.0950, 1.0952), (1.0951, 1.0953)):
        ea.call(ea.ea.set_quote("EURUSD", bid, ask))

    def ticks_landed() -> bool:
        with tenant_context(tenant_id):
            rows = BrokerQuote.objects.filter(account_id=account_id, symbol="EURUSD")
            return {(float(q.bid), float(q.ask)) for q in rows} >= {(1.0950, 1.0952), (1.0951, 1.0953)}

    until(ticks_landed, "the EA's two ticks in mt5_broker_quotes", stack=stack)
    say("the EA's ticks are stored")
    if web_env.get("INGEST_MODE") == "bridge" and "data_bridge" in running:
        from trading.models import BridgeApplied

        with operator_path():  # web only published them: the bridge wrote them, and recorded each batch it applied
            batches = BridgeApplied.objects.filter(msg_id__startswith="quotes:").count()
        if not batches:
            raise SmokeFailure("the ticks are stored, but suho_bridge_applied records no quotes batch")
        stack.passed("data_bridge", f"INGEST_MODE=bridge: the ticks came through it ({batches} quotes batch(es))")

    signal_body = {
        "signal_id": f"prodsmoke-{time.time_ns()}", "account_id": str(account_id), "symbol": "EURUSD",
        "action": "BUY", "entry_price": 1.0953, "entry_price_range": {"min": 1.0951, "max": 1.0955},
        "stop_loss": 1.0933, "take_profit": 1.0983, "volume": 0.1, "model_version": "prodsmoke",
        "confidence_score": 0.9, "valid_until": (timezone.now() + timezone.timedelta(minutes=5)).isoformat(),
        "metadata": {"polygon_ask": 1.0953},
    }  # fmt: skip
    posted = browser.post_json("/api/signals/", signal_body, ml_key)
    if posted.status != 201:
        raise SmokeFailure(f"POST /api/signals/ answered {posted.status}, expected 201: {posted.body[:300]!r}")
    signal_id = json.loads(posted.body)["signal_id"]
    until(lambda: counters.signals_executed and ea.ea.positions, "the signal at the EA and its position", stack=stack)
    until(lambda: not ea.ea.unacknowledged(), "the EVENT_ACK of TRADE_OPENED", stack=stack)
    [position] = ea.ea.positions.values()

    def trade_stored() -> bool:
        with tenant_context(tenant_id):
            return TradeOrder.objects.filter(account_id=account_id, ticket=position.ticket).exists()

    until(trade_stored, f"the trade (ticket {position.ticket}) in mt5_trade_orders", stack=stack)
    with operator_path():
        status = TradingSignal.objects.get(signal_id=signal_id).status
    if status != "executed":
        raise SmokeFailure(f"signal {signal_id} is {status!r} after the EA executed it, expected 'executed'")
    say(f"signal {signal_id} reached the EA, its trade is stored and acknowledged")

    def trade_on_stream() -> bool:  # what the ML engine reads: JetStream's MT5_ACCOUNT (nats_setup makes it)
        try:
            events = stream_replay(account_id=str(account_id), kind="trades")
        except Exception as exc:  # nats.py's errors are not OSErrors: say what NATS answered
            raise SmokeFailure(f"{type(exc).__name__}: {exc or 'no detail'}") from exc
        return any(event.subject.startswith(f"mt5.account.{account_id}.trades.") for event in events)

    until(trade_on_stream, "the trade on JetStream (stream MT5_ACCOUNT)", stack=stack)
    say("the trade is on JetStream for the ML engine")
    if "signal_intake" in running:
        nats_signal_flow(stack, ea, signal_body, ml_key, web_env["NATS_URL"])


def nats_signal_flow(stack: Stack, ea: EAThread, rest_body: dict, ml_key: str, nats_url: str) -> None:
    """The ML engine's second path: the same JSON requested on `ml.signals` (signal_intake_nats) reaches the EA."""
    from signals.intake_nats import SUBJECT
    from signals.models import TradingSignal
    from suho.routers import operator_path

    # A fresh quote first (SIGNAL_MAX_QUOTE_AGE_S): the signal is placed on the account's own latest broker quote.
    ea.call(ea.ea.set_quote("EURUSD", 1.0952, 1.0954))
    executed_before = ea.ea.counters.signals_executed
    body = {**rest_body, "signal_id": f"prodsmoke-nats-{time.time_ns()}", "entry_price": 1.0954,
            "entry_price_range": {"min": 1.0952, "max": 1.0956}, "stop_loss": 1.0934,
            "take_profit": 1.0984}  # fmt: skip

    async def request() -> dict:
        import nats
        from nats.errors import NoRespondersError

        from suho.bus import nats_servers  # NATS_URL may list a cluster's servers (configures no Django)

        connection = await nats.connect(nats_servers(nats_url), name="prod-smoke-ml-engine",
                                        connect_timeout=HTTP_TIMEOUT_S)  # fmt: skip
        try:
            reply = await connection.request(SUBJECT, json.dumps(body).encode(), timeout=HTTP_TIMEOUT_S,
                                             headers={"Authorization": f"Bearer {ml_key}"})  # fmt: skip
        except (NoRespondersError, TimeoutError) as exc:  # not subscribed yet: the same signal_id is stored once
            raise SmokeFailure(f"{type(exc).__name__} on {SUBJECT}") from exc
        finally:
            await connection.close()
        return json.loads(reply.data)

    answer = until(lambda: asyncio.run(request()), f"an answer on {SUBJECT} from the signal intake", START_S, stack)
    if "error" in answer or not answer.get("signals"):
        raise SmokeFailure(f"the signal intake on {SUBJECT} answered {answer!r}")
    signal_id = answer["signals"][0]["signal_id"]
    until(lambda: ea.ea.counters.signals_executed > executed_before, f"signal {signal_id} (NATS) at the EA",
          stack=stack)  # fmt: skip

    def executed() -> bool:
        with operator_path():
            return TradingSignal.objects.get(signal_id=signal_id).status == "executed"

    until(executed, f"signal {signal_id} (NATS) recorded as executed", stack=stack)
    stack.passed("signal_intake", f"signal {signal_id} requested on {SUBJECT} was executed by the EA")


def reference_feed_check(stack: Stack, polygon: FakePolygon) -> None:
    """compose's reference_feed command, pointed at the stand-in: it authenticates, subscribes and stores quotes."""
    from quotes.models import ReferenceQuote
    from suho.routers import operator_path

    def stored() -> bool:
        with operator_path():
            rows = ReferenceQuote.objects.filter(symbol="EURUSD", source="polygon").values_list("bid", "ask")
            return {(float(bid), float(ask)) for bid, ask in rows} >= set(POLYGON_QUOTES)

    until(stored, "the stand-in Polygon's quotes in mt5_reference_quotes", START_S, stack)
    stack.passed("reference_feed", f"subscribed to {polygon.subscribed[-1]}; its quotes are stored")


if __name__ == "__main__":
    sys.exit(main())
