"""Suho settings: every value a deployer sets comes from the environment, read here and nowhere else.

The README's settings table documents each variable. With DEBUG off, the variables a production process cannot
run without must be set, or start-up fails naming the first one missing.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value in (None, "") else value


def env_bool(name: str, default: bool) -> bool:
    value = env(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = env(name)
    try:
        return default if value is None else int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}") from exc


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in (env(name, default) or "").split(",") if item.strip()]


def required(name: str, dev_default: str) -> str:
    """A variable production cannot run without; in DEBUG a development default stands in."""
    value = env(name)
    if value is not None:
        return value
    if DEBUG or TESTING:
        return dev_default
    raise ImproperlyConfigured(f"{name} is not set; it is required when DEBUG is off (see README, Settings).")


DEBUG = env_bool("DEBUG", False)
TESTING = env_bool("SUHO_TESTING", False)

SECRET_KEY = required("SECRET_KEY", "dev-only-insecure-key-change-me-0123456789-abcdefghijklmnopqrstuvwxyz")
ALLOWED_HOSTS = [host.strip() for host in required("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")]
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# --- PostgreSQL: one server and database, three roles -----------------------------------------------------------
# The app never runs as DATABASE_URL's user. It connects as the service role (RLS-bound, owns nothing), the owner
# (migrations, partition upkeep) and the operator (Django admin, cross-tenant jobs, identity look-ups).
# `manage.py db_setup` uses DATABASE_ADMIN_URL (or DATABASE_URL) to create those roles and the database.
DATABASE_URL = required("DATABASE_URL", "postgres://postgres@127.0.0.1:25432/suho")
DATABASE_ADMIN_URL = env("DATABASE_ADMIN_URL", DATABASE_URL)
DB_SERVICE_USER = env("DB_SERVICE_USER", "suho_service")
DB_OWNER_USER = env("DB_OWNER_USER", "suho_owner")
DB_OPERATOR_USER = env("DB_OPERATOR_USER", "suho_operator")
DB_ROLE_PASSWORDS = {
    DB_SERVICE_USER: env("DB_SERVICE_PASSWORD", ""),
    DB_OWNER_USER: env("DB_OWNER_PASSWORD", ""),
    DB_OPERATOR_USER: env("DB_OPERATOR_PASSWORD", ""),
}
TIMESCALEDB = env("SUHO_TIMESCALEDB", "auto")  # auto | on | off
DB_SSLMODE = env("DB_SSLMODE", "prefer")
# One bounded psycopg pool per role and process (docs/operations.md, "Database connections"): a request or thread
# takes a connection for its work and hands it back; past the bound it queues up to DB_POOL_TIMEOUT_S, then gets
# 503 database_busy. A process holds at most 2 × DB_POOL_MAX_SIZE + DB_OWNER_POOL_MAX_SIZE connections.
DB_POOL_MIN_SIZE = env_int("DB_POOL_MIN_SIZE", 1)
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 10)
DB_POOL_TIMEOUT_S = env_int("DB_POOL_TIMEOUT_S", 5)
DB_OWNER_POOL_MAX_SIZE = 2  # migrations and partition upkeep: one at a time
if not 0 <= DB_POOL_MIN_SIZE <= DB_POOL_MAX_SIZE or DB_POOL_MAX_SIZE < 1 or DB_POOL_TIMEOUT_S < 1:
    raise ImproperlyConfigured("DB_POOL_* need 0 <= DB_POOL_MIN_SIZE <= DB_POOL_MAX_SIZE, MAX >= 1 and TIMEOUT_S >= 1")
DB_CONNECTIONS_PER_PROCESS = 2 * DB_POOL_MAX_SIZE + DB_OWNER_POOL_MAX_SIZE


def database_for(user: str, url: str = DATABASE_URL, *, pool_min_size=DB_POOL_MIN_SIZE, pool_max_size=DB_POOL_MAX_SIZE):
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "timescale"}:
        raise ImproperlyConfigured(f"DATABASE_URL must be a postgres:// URL, got scheme {parts.scheme!r}")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/") or "suho",
        "USER": user,
        "PASSWORD": DB_ROLE_PASSWORDS.get(user, ""),
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or 5432),
        "CONN_MAX_AGE": 0,  # required with a pool: "closing" hands the connection back to it
        "CONN_HEALTH_CHECKS": True,  # psycopg_pool's check at checkout, made cheaper by suho/dbpool.py
        "OPTIONS": {
            "sslmode": DB_SSLMODE,
            "application_name": "suho",
            "pool": {
                "min_size": pool_min_size,
                "max_size": pool_max_size,
                "timeout": DB_POOL_TIMEOUT_S,
            },
        },
    }


DATABASES = {
    "default": database_for(DB_SERVICE_USER),
    "owner": database_for(DB_OWNER_USER, pool_min_size=0, pool_max_size=DB_OWNER_POOL_MAX_SIZE),
    "operator": database_for(DB_OPERATOR_USER),
}
DATABASE_ROUTERS = ["suho.routers.RoleRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Local state, git-ignored: the embedded servers' data, Celery beat's schedule, the demo EA's key (`seed_demo`).
STATE_DIR = Path(env("SUHO_STATE_DIR", str(BASE_DIR / ".state")))

# --- Redis and NATS -----------------------------------------------------------------------------------------------
REDIS_URL = required("REDIS_URL", "redis://127.0.0.1:26379/0")
NATS_URL = required("NATS_URL", "nats://127.0.0.1:24222")
NATS_STREAM_REPLICAS = env_int("NATS_STREAM_REPLICAS", 1)  # 1 on one machine, 3 on a cluster
INGEST_MODE = env("INGEST_MODE", "direct")  # direct: the gateway writes volume rows; bridge: data_bridge does
if INGEST_MODE not in {"direct", "bridge"}:
    raise ImproperlyConfigured(f"INGEST_MODE must be direct or bridge, got {INGEST_MODE!r}")
NATS_DUPLICATE_WINDOW_S = env_int("NATS_DUPLICATE_WINDOW_S", 120)
NATS_ACCOUNT_STREAM_MAX_AGE_H = env_int("NATS_ACCOUNT_STREAM_MAX_AGE_H", 72)
NATS_ACCOUNT_STREAM_MAX_BYTES = env_int("NATS_ACCOUNT_STREAM_MAX_BYTES", 10 * 1024**3)
NATS_OUTBOUND_STREAM_MAX_AGE_H = env_int("NATS_OUTBOUND_STREAM_MAX_AGE_H", 168)
NATS_OUTBOUND_STREAM_MAX_BYTES = env_int("NATS_OUTBOUND_STREAM_MAX_BYTES", 1024**3)


def redis_db(url: str, db: int) -> str:
    """The same Redis server, another logical database."""
    parts = urlsplit(url)
    return parts._replace(path=f"/{db}").geturl()


def redis_url_db(url: str) -> int:
    path = urlsplit(url).path.strip("/")
    if not path.isdigit() and path:
        raise ImproperlyConfigured(f"REDIS_URL's path must be a database number, got {path!r}")
    return int(path or 0)


# Several deployments may share one Redis: each uses the database REDIS_URL names (or the REDIS_*_DB overrides) and
# puts every key of the cache, the channel layer and the Celery queues under REDIS_KEY_PREFIX (default: the
# PostgreSQL database's name). The latest-value keys (suho/cache.py) keep the seed's names for readers outside Suho.
REDIS_KEY_PREFIX = env(
    "REDIS_KEY_PREFIX", "suho-test" if TESTING else urlsplit(DATABASE_URL).path.lstrip("/") or "suho"
)
REDIS_URL_DB = redis_url_db(REDIS_URL)
# A dead or stalled Redis is a cache miss within a second or two, never a hung request (suho/cache.py).
REDIS_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 2}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",  # its one user, accounts/throttle.py, falls back
        "LOCATION": redis_db(REDIS_URL, env_int("REDIS_CACHE_DB", REDIS_URL_DB)),
        "KEY_PREFIX": REDIS_KEY_PREFIX,
        "OPTIONS": REDIS_OPTIONS,
    }
}
# A channel layer's receive is a BZPOPMIN that the server answers after `brpop_timeout` (5 s) when nothing came;
# redis-py 8 made 5 s the default client read timeout, so every receive that waited its full 5 s raised
# "Timeout reading from …" (redis-py #4091, channels_redis #422). The read timeout sits above the blocking one:
# a stalled Redis is still noticed, an idle channel is not an error.
CHANNEL_LAYER_READ_TIMEOUT_S = 10  # channels_redis's RedisChannelLayer.brpop_timeout (5 s) + 5 s
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [
                {
                    "address": redis_db(REDIS_URL, env_int("REDIS_CHANNELS_DB", REDIS_URL_DB)),
                    "socket_connect_timeout": REDIS_OPTIONS["socket_connect_timeout"],
                    "socket_timeout": CHANNEL_LAYER_READ_TIMEOUT_S,
                }
            ],
            "prefix": f"{REDIS_KEY_PREFIX}:asgi",
        },
    }
}
CELERY_BROKER_URL = env("CELERY_BROKER_URL", redis_db(REDIS_URL, env_int("REDIS_CELERY_DB", REDIS_URL_DB)))
CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": f"{REDIS_KEY_PREFIX}:"}  # queues, bindings, unacked
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(STATE_DIR / "celerybeat-schedule")

# --- Django ------------------------------------------------------------------------------------------------------
INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served as our static files
    "channels",
    "suho",
    "accounts",
    "quotes",
    "trading",
    "signals",
    "compliance",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "suho.csp.ContentSecurityPolicyMiddleware",
    "suho.errors.DatabaseBusyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.staff_auth.StaffSecondFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "suho.tenancy.TenantContextMiddleware",
    "suho.admin_site.OperatorAdminMiddleware",
]
ROOT_URLCONF = "suho.urls"
ASGI_APPLICATION = "suho.asgi.application"
# The WebSocket routes, by name like ROOT_URLCONF: the gateway's consumers (suho imports no app, docs/dependencies.md)
WEBSOCKET_URLPATTERNS = "trading.routing.websocket_urlpatterns"
WSGI_APPLICATION = None
AUTH_USER_MODEL = "accounts.User"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
if TESTING:  # tests create many users; production keeps Argon2
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", str(BASE_DIR / "staticfiles")))  # collectstatic writes here
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG or TESTING
LOGIN_URL = "/accounts/login/"

# --- Security (clean `manage.py check --deploy` with production values) ----------------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not (DEBUG or TESTING))
OPERATOR_2FA_REQUIRED = env_bool("OPERATOR_2FA_REQUIRED", True)  # staff need a TOTP code on every path
AUTH_BACKOFF_FIRST_BLOCK_S = 1  # after a limit's free failures (accounts/throttle.py); then doubling to the cap
TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", 0)  # proxies appending to X-Forwarded-For (suho/client_addr.py)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", True) else None
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Request bodies: suho.server answers 413 before buffering one over this (Content-Length, or a chunked body as it
# passes it); Django's own limit is the same number behind it.
HTTP_MAX_BODY_BYTES = env_int("HTTP_MAX_BODY_BYTES", 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = HTTP_MAX_BODY_BYTES
# On SIGTERM a web process drains (suho/drain.py): /readyz answers 503 and every EA socket is closed with 1012; the
# process waits at most this long for them to close before it exits (compose's stop_grace_period is longer).
SHUTDOWN_DRAIN_S = env_int("SHUTDOWN_DRAIN_S", 15)

# --- REST API and tokens --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.staff_auth.SecondFactorJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "suho.edge.BoundedJSONParser",  # depth and NUL limits (suho/edge.py)
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "suho.edge.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "suho.api_errors.api_exception_handler",  # one error shape, keyed on the exception
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Suho API",
    "DESCRIPTION": "MT5 EA gateway, signals and analytics",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # static/drf_spectacular_sidecar/, no CDN (and the CSP allows no other host)
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=15),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("EA_REFRESH_TOKEN_DAYS", 30)),
    "SIGNING_KEY": env("JWT_SIGNING_KEY", SECRET_KEY),
    "ALGORITHM": "HS256",
    "USER_AUTHENTICATION_RULE": "accounts.staff_auth.user_token_allowed",  # staff: /api/staff/token/ only
    "CHECK_REVOKE_TOKEN": True,  # users' tokens carry a password fingerprint: a password change ends them
}

# --- Demo data (`manage.py seed_demo`): passwords for the demo trader and operator; random when unset --------------
DEMO_PASSWORD = env("DEMO_PASSWORD")
DEMO_ADMIN_PASSWORD = env("DEMO_ADMIN_PASSWORD")

# --- Logging: JSON lines in production, readable in development ----------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "suho.logging.JsonFormatter"},
    },
    "filters": {"redact_secrets": {"()": "suho.logging.SecretRedactingFilter"}},  # the webhook's secret URL
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain" if DEBUG else "json",
            "filters": ["redact_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}


def quoted_url(user: str) -> str:
    """A libpq URL for one of the roles (for pg_dump and friends), same server and database as DATABASE_URL."""
    db = DATABASES["default"]
    password = DB_ROLE_PASSWORDS.get(user, "")
    auth = quote(user) + (":" + quote(password) if password else "")
    return f"postgresql://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


# --- Risk monitor notifications and e-mail (compliance.risk) --------------------------------------------------
EMAIL_BACKEND = env(
    "EMAIL_BACKEND",
    "django.core.mail.backends." + ("console" if DEBUG or TESTING else "smtp") + ".EmailBackend",
)
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "suho@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
RISK_ALERT_EMAILS = env_list("RISK_ALERT_EMAILS")  # operators notified of each new risk event
RISK_WEBHOOK_URL = env("RISK_WEBHOOK_URL", "")  # JSON POST of each new risk event (Slack/Opsgenie bridge etc.)
RISK_WEBHOOK_TIMEOUT_S = env_int("RISK_WEBHOOK_TIMEOUT_S", 5)

# --- Metrics (suho.metrics, GET /metrics) --------------------------------------------------------------------------
METRICS_TOKEN = env("METRICS_TOKEN", "")  # Prometheus sends "Authorization: Bearer <token>"
METRICS_PUBLIC = env_bool("METRICS_PUBLIC", False)  # without a token /metrics is 403 unless this opens it
# A scrape reads the database at most once per this many seconds per process (tests: every scrape reads).
METRICS_CACHE_S = env_int("METRICS_CACHE_S", 0 if TESTING else 5)
NATS_MONITOR_URL = env("NATS_MONITOR_URL", "")  # e.g. http://nats:8222, for JetStream consumers' pending counts
SECURE_REDIRECT_EXEMPT += [r"^metrics$"]  # scraped over the internal network, like the health checks

# --- Signal intake (signals.services) ---------------------------------------------------------------------------
SIGNAL_MAX_QUOTE_AGE_S = env_int("SIGNAL_MAX_QUOTE_AGE_S", 10)  # an older broker quote refuses the signal

# --- Reference market data and the learning loop (quotes.feeds, signals.learning) --------------------------------
POLYGON_API_KEY = env("POLYGON_API_KEY", "")  # `manage.py reference_feed --source polygon` refuses to start without it
POLYGON_WS_URL = env("POLYGON_WS_URL", "wss://socket.polygon.io/forex")
REFERENCE_SYMBOLS = env_list("REFERENCE_SYMBOLS", "EURUSD,GBPUSD,USDJPY,XAUUSD")
FEEDBACK_EXPORT_DIR = Path(env("FEEDBACK_EXPORT_DIR", str(STATE_DIR / "feedback")))
REFERENCE_STRATEGY_ENABLED = env_bool("REFERENCE_STRATEGY_ENABLED", False)  # and per account: strategy_parameters
# How often beat runs it: its bars are one minute, each judged on the first run after it closes; `make run`'s demo
# (SUHO_DEMO_EA=1) runs it every 10 s so the first crossover is a signal within seconds, not up to a minute.
REFERENCE_STRATEGY_INTERVAL_S = env_int("REFERENCE_STRATEGY_INTERVAL_S", 60)
CELERY_IMPORTS = ["signals.learning_tasks"]  # tasks outside an app's tasks.py (autodiscovery finds only those)

# --- The terminal agent (eaclient/dist/, `suho-ea`) ---------------------------------------------------------------
# The pip requirement the portal's "API key shown once" page tells a trader to install: where this deployment
# publishes the agent's wheel, or the repository's subdirectory. Never a bare name: that would install whatever
# the public index has under it.
EA_AGENT_PIP = env("SUHO_EA_AGENT_PIP", "suho-ea[mt5] @ git+https://<the Suho repository>#subdirectory=eaclient/dist")
