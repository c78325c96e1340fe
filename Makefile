# Suho — the two commands a newcomer needs are `make run` and `make test`.
# With DATABASE_URL / REDIS_URL / NATS_URL set, those servers are used; otherwise embedded ones start (.state/).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
STACK := $(BIN)/python -m suho.devstack exec --

.PHONY: screenshots install run run-cluster cluster-deps test prod-smoke nats-cluster lint format bench lock clean-state browser-deps

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[embedded,dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	DEBUG=$${DEBUG:-1} $(STACK) $(BIN)/python -m suho.supervise

# N web processes behind HAProxy on PORT (8000), with worker and beat: the production shape on one machine
# (docs/operations.md, "Scaling out"). Needs `make cluster-deps`.
N ?= 3
run-cluster: install
	WEB_PROCESSES=$(N) DEBUG=$${DEBUG:-1} $(STACK) $(BIN)/python -m suho.supervise

test: install
	$(STACK) $(BIN)/python -m pytest $(PYTEST_ARGS)

# The README's screenshots (docs/screenshots/), from the demo's browser test (needs `make browser-deps`).
screenshots: install
	SUHO_SCREENSHOTS_TO_DOCS=1 $(STACK) $(BIN)/python -m pytest tests/portal/test_demo_browser.py -q

# docker/compose.yaml's own commands run as local processes with production settings, then used as a trader, the
# ML engine and an EA would; exit 1 says what failed (tests/prodsmoke.py, docs/decisions/0016).
prod-smoke: install
	$(STACK) $(BIN)/python -m tests.prodsmoke

# Three clustered JetStream servers on 127.0.0.1:24251-24253 (SUHO_NATS_CLUSTER_PORT moves them), the streams on
# three replicas; prints the NATS_URL to export, Ctrl-C stops them. `.venv/bin/python -m suho.natscluster exec --
# make run` runs a command against it instead (suho/natscluster.py, docs/operations.md#nats-cluster).
nats-cluster: install
	$(BIN)/python -m suho.natscluster run

# lint-imports: the import contracts in pyproject.toml (the dependency order, docs/dependencies.md).
# eaclient.stubs.typecheck: mypy on eaclient against metatrader5-stubs plus our overlay (eaclient/stubs/).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/python -m eaclient.stubs.typecheck

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(STACK) $(BIN)/python -m bench.run

# Re-pin every dependency after changing pyproject.toml.
lock:
	rm -rf /tmp/suho-lock && $(PYTHON) -m venv /tmp/suho-lock
	/tmp/suho-lock/bin/pip install --quiet ".[embedded,dev,browser]"
	/tmp/suho-lock/bin/pip freeze --exclude suho > requirements.lock

clean-state:
	$(BIN)/python -m suho.devstack stop || true
	rm -rf .state

# Acceptance-test tools: Debian's Chromium and its driver (no browser download), Selenium; schemathesis and
# openapi-spec-validator for the API fuzz and schema check. Needs root (CI is). Without them those tests skip.
browser-deps: install
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver || \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver)
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[browser]"

# Debian's HAProxy for `make run-cluster` and the scale-out fault tests (which skip without it). Needs root (CI is).
cluster-deps:
	test -x /usr/sbin/haproxy || DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy || \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy)
