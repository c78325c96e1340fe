"""N web processes behind HAProxy on loopback: `make run-cluster N=3` (suho/supervise.py) and the fault tests.

The balancer's configuration is docker/haproxy.cfg, the file compose mounts, with two local changes: the
`server-template` line (compose's DNS finds the replicas) becomes one `server` line per local web process, and the
`resolvers` section that only compose's DNS can answer is dropped. HAProxy is Debian's package (`make cluster-deps`);
what needs it says so when /usr/sbin/haproxy is missing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
HAPROXY = Path("/usr/sbin/haproxy")
HAPROXY_CONFIG = BASE_DIR / "docker" / "haproxy.cfg"
HAPROXY_MISSING = f"{HAPROXY} is missing: `make cluster-deps` installs Debian's haproxy (needs root)"
SERVER_TEMPLATE = re.compile(r"^[ \t]*server-template web .*$", re.MULTILINE)
RESOLVERS = re.compile(r"^resolvers docker\n(?:[ \t]+.*\n|[ \t]*#.*\n)*\n?", re.MULTILINE)


def haproxy_available() -> bool:
    return HAPROXY.is_file() and os.access(HAPROXY, os.X_OK)


def haproxy_config(web_ports: list[int], *, admin_socket: Path | None = None, source: Path = HAPROXY_CONFIG) -> str:
    """docker/haproxy.cfg with one `server` line per web process on 127.0.0.1 (module docstring), and the runtime
    API on `admin_socket` when given (tests read which servers HAProxy considers up)."""
    text = source.read_text()
    if admin_socket is not None:
        text = text.replace("global\n", f"global\n    stats socket {admin_socket} mode 600 level admin\n", 1)
    servers = "\n".join(f"    server web{i} 127.0.0.1:{port}" for i, port in enumerate(web_ports, 1))
    text, found = SERVER_TEMPLATE.subn(servers, text)
    if found != 1:
        raise ValueError(f"{source} must have exactly one `server-template web` line, found {found}")
    return RESOLVERS.sub("", text)


def haproxy_start(web_ports: list[int], *, port: int, workdir: Path, check_host: str = "localhost",
                  log_file=None, admin_socket: Path | None = None) -> subprocess.Popen:  # fmt: skip
    """HAProxy on 127.0.0.1:`port` in front of `web_ports`, in the foreground (-db), its config in `workdir`. The
    caller stops it (SIGTERM ends it at once; SIGUSR1 would let its open connections finish)."""
    config = workdir / "haproxy.cfg"
    config.write_text(haproxy_config(web_ports, admin_socket=admin_socket))
    env = {**os.environ, "SUHO_LB_BIND": f"127.0.0.1:{port}", "SUHO_LB_CHECK_HOST": check_host}
    check = subprocess.run([str(HAPROXY), "-c", "-q", "-f", str(config)], env=env, capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"HAProxy refuses {config}:\n{check.stdout}{check.stderr}")
    return subprocess.Popen([str(HAPROXY), "-db", "-f", str(config)], env=env, stdout=log_file,
                            stderr=subprocess.STDOUT if log_file else None)  # fmt: skip


def web_command(port: int) -> list[str]:
    """One web process, as the image runs it (docker/Dockerfile's CMD), on 127.0.0.1:`port`."""
    return [sys.executable, "-m", "suho.server", "-b", "127.0.0.1", "-p", str(port), "suho.asgi:application"]
