"""Resync settings.

With no environment variables Resync runs on the *embedded default*: a SQLite file, the in-memory
channel layer, Celery tasks run in-process, Qdrant in local mode on disk, the bundled mock HWA and
the no-LLM answer mode. Each variable below switches one part to its production service; the
README's configuration table lists them all.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.utils.translation import gettext_lazy as _
from redis.exceptions import ConnectionError as RedisConnectionError

from resync_site.lib.env import (
    EnvError,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_required,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# litellm fetches a price map from the network at import unless told not to; these machines are
# offline and a start-up must never wait on the network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

RESYNC_ENV = env_choice("RESYNC_ENV", "embedded", ("embedded", "production", "test"))
PRODUCTION = RESYNC_ENV == "production"
DATA_DIR = Path(env_str("RESYNC_DATA_DIR", str(BASE_DIR / "var"))).resolve()

if PRODUCTION:
    SECRET_KEY = env_required("SECRET_KEY", why="production mode signs sessions and tokens with it")
    if len(SECRET_KEY) < 50:
        raise EnvError("SECRET_KEY must be at least 50 characters long in production")
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
    if not ALLOWED_HOSTS:
        raise EnvError("ALLOWED_HOSTS must be set in production (comma-separated host names)")
    if not env_required("DATABASE_URL", why="production needs PostgreSQL, not the embedded SQLite file").startswith("postgres"):
        raise EnvError("DATABASE_URL must point at PostgreSQL in production (postgres://...), not SQLite")
    # Several web and worker processes share websocket groups and tasks only through Redis.
    env_required("REDIS_URL", why="production runs several processes that share the channel layer and tasks through it")
    DEBUG = False
else:
    # A fixed development key: the embedded default is for one machine, never exposed.
    SECRET_KEY = env_str("SECRET_KEY", "embedded-default-key-not-for-production-use-0123456789abcdef")
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
    DEBUG = env_bool("DEBUG", False)

CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "simple_history",
    "import_export",
    "mozilla_django_oidc",
    "resync_site",
    "audit",
    "jobs",
    "knowledge",
    "chat",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "resync_site.lib.logging.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "resync_site.lib.current.CurrentRequestMiddleware",
    "resync_site.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "resync_site.urls"
WSGI_APPLICATION = "resync_site.wsgi.application"
ASGI_APPLICATION = "resync_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "resync_site.context_processors.resync",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_url("DATABASE_URL", schemes=("postgres", "postgresql", "sqlite"))
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0, minimum=0))}
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "resync.sqlite3",
            # Concurrent writers (poller, chat turns, web) wait for the lock instead of failing.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, Celery broker, cache ----------------------------------------------
REDIS_URL = env_url("REDIS_URL", schemes=("redis", "rediss", "unix"))
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "resync_site.lib.channel_layer.RedisChannelLayer",  # one receiver per process (see there)
            # redis-py 8 reads with a 5 s socket timeout by default, the same as channels_redis's
            # blocking BZPOPMIN: an idle consumer then dies with "Timeout reading". Give reads slack.
            # retry_on_error: after a Redis restart the pool's old connections are dead; without it the
            # first command on each fails (a websocket connect answered 500, tests/faults/test_redis_restart.py).
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30, "retry_on_error": [RedisConnectionError]}],
                       "prefix": env_str("CHANNEL_LAYER_PREFIX", "resync"),
                       # Per web process (all its sockets share one Redis key): a process that falls
                       # behind gets frames late rather than losing them (bench/chat.py, 200 sessions).
                       "capacity": env_int("CHANNEL_LAYER_CAPACITY", 20000, minimum=100)},
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
# Without a broker the tasks run in the calling process (the embedded default).
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
# A pool child that dies gets its message redelivered at once (acks_late alone would acknowledge it
# as failed). Tasks are safe to run twice; imports and exports skip such a redelivery (the run is no
# longer queued) and are restarted by the recovery sweep instead (resync_site/lib/work.py).
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 360, minimum=1)
CELERY_TASK_ROUTES = {
    "chat.tasks.*": {"queue": "chat"},
    "jobs.tasks.*": {"queue": "hwa"},
    "knowledge.tasks.*": {"queue": "knowledge"},
    "audit.tasks.*": {"queue": "audit"},
}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Django's LOGGING (JSON lines, secret redaction) stays in charge of the worker's log output.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {}
# Imports and exports killed mid-run (resync_site/lib/work.py): a running run whose heartbeat is
# older than WORK_STALE_SECONDS is queued again, up to WORK_MAX_ATTEMPTS claims, then failed.
WORK_STALE_SECONDS = env_int("WORK_STALE_SECONDS", 60, minimum=1)
WORK_MAX_ATTEMPTS = env_int("WORK_MAX_ATTEMPTS", 3, minimum=1)
WORK_HEARTBEAT_SECONDS = min(5.0, WORK_STALE_SECONDS / 4)
WORK_SWEEP_SECONDS = max(1.0, WORK_STALE_SECONDS / 2)
# A queued run no worker claimed for WORK_QUEUED_STALE_SECONDS lost its task message (broker down at
# the send, Redis restarted): it is sent again, up to WORK_MAX_RESENDS times, then failed.
WORK_QUEUED_STALE_SECONDS = env_int("WORK_QUEUED_STALE_SECONDS", max(300, 2 * WORK_STALE_SECONDS), minimum=1)
WORK_MAX_RESENDS = env_int("WORK_MAX_RESENDS", 3, minimum=1)

# --- Services Resync talks to -----------------------------------------------------------------
QDRANT_URL = env_url("QDRANT_URL", schemes=("http", "https"))
QDRANT_API_KEY = env_str("QDRANT_API_KEY")
QDRANT_PATH = DATA_DIR / "qdrant"
QDRANT_COLLECTION = env_str("QDRANT_COLLECTION", "resync_knowledge")
# local/use-m3 (multilingual USE v3, pip package) won the retrieval benchmark: see knowledge/README.md.
EMBEDDING_MODEL = env_str("EMBEDDING_MODEL", "local/use-m3")
EMBEDDING_API_BASE = env_str("EMBEDDING_API_BASE")
EMBEDDING_API_KEY = env_str("EMBEDDING_API_KEY")
# Minimum probability of the knowledge search's confidence model to answer (knowledge/README.md).
KB_CONFIDENCE_THRESHOLD = env_float("KB_CONFIDENCE_THRESHOLD", 0.5, minimum=0.0)
KB_IMPORT_MAX_BYTES = env_int("KB_IMPORT_MAX_BYTES", 10 * 1024 * 1024, minimum=1024)
KB_IMPORT_MAX_UNZIPPED_BYTES = env_int("KB_IMPORT_MAX_UNZIPPED_BYTES", 200 * 1024 * 1024, minimum=1024)
KB_IMPORT_MAX_ROWS = env_int("KB_IMPORT_MAX_ROWS", 20_000, minimum=1)
KB_IMPORT_MAX_CELL_CHARS = env_int("KB_IMPORT_MAX_CELL_CHARS", 10_000, minimum=100)
# The AI auditor and verified answers (knowledge/auditor.py, knowledge/learning.py).
KB_DUPLICATE_SIMILARITY = env_float("KB_DUPLICATE_SIMILARITY", 0.9, minimum=0.0)
KB_NEAR_DUPLICATE_SIMILARITY = env_float("KB_NEAR_DUPLICATE_SIMILARITY", 0.8, minimum=0.0)
KB_AUDIT_STALE_DAYS = env_int("KB_AUDIT_STALE_DAYS", 30, minimum=1)
KB_AUDIT_UNUSED_DAYS = env_int("KB_AUDIT_UNUSED_DAYS", 90, minimum=1)
KB_AUDIT_THUMBS_DOWN = env_int("KB_AUDIT_THUMBS_DOWN", 3, minimum=1)
KB_VERIFIED_THRESHOLD = env_float("KB_VERIFIED_THRESHOLD", 0.85, minimum=0.0)
CELERY_BEAT_SCHEDULE["knowledge-auditor-sweep"] = {
    "task": "knowledge.tasks.auditor_sweep",
    "schedule": crontab(hour="2", minute="15"),
}

TWS_URL = env_url("TWS_URL", schemes=("http", "https"))
TWS_USERNAME = env_str("TWS_USERNAME")
TWS_PASSWORD = env_str("TWS_PASSWORD")
TWS_API_KEY = env_str("TWS_API_KEY")
TWS_CA_BUNDLE = env_str("TWS_CA_BUNDLE")
TWS_VERIFY_TLS = env_bool("TWS_VERIFY_TLS", True)
TWS_TIMEOUT_SECONDS = env_float("TWS_TIMEOUT_SECONDS", 10.0, minimum=0.1)
TWS_POLL_SECONDS = env_int("TWS_POLL_SECONDS", 30, minimum=1)
MOCK_TWS_PORT = env_int("MOCK_TWS_PORT", 31116, minimum=0, maximum=65535)
MOCK_TWS_SCENARIO = env_str("MOCK_TWS_SCENARIO", "demo")

LLM_MODEL = env_str("LLM_MODEL")
LLM_API_BASE = env_str("LLM_API_BASE")
LLM_API_KEY = env_str("LLM_API_KEY")
LLM_TIMEOUT_SECONDS = env_float("LLM_TIMEOUT_SECONDS", 30.0, minimum=0.1)
LLM_MASKING = env_bool("LLM_MASKING", False)

ACTION_TICKET_REQUIRED = env_bool("ACTION_TICKET_REQUIRED", False)
ACTION_BULK_LIMIT = env_int("ACTION_BULK_LIMIT", 5, minimum=1)
ACTION_PROPOSAL_TTL_SECONDS = env_int("ACTION_PROPOSAL_TTL_SECONDS", 900, minimum=30)
# A confirmed action no worker started within ACTION_START_TIMEOUT_SECONDS (its task message was lost),
# or started and not finished within ACTION_RUN_TIMEOUT_SECONDS (its worker died), is marked failed
# for the operator to decide: never run again, since HWA actions are not idempotent.
ACTION_START_TIMEOUT_SECONDS = env_int("ACTION_START_TIMEOUT_SECONDS", 300, minimum=10)
ACTION_RUN_TIMEOUT_SECONDS = env_int("ACTION_RUN_TIMEOUT_SECONDS", 900, minimum=10)
# Chat websocket limits (per user and per frame) and the agent's budgets.
CHAT_MAX_FRAME_BYTES = env_int("CHAT_MAX_FRAME_BYTES", 16 * 1024, minimum=1024)
CHAT_MESSAGES_PER_MINUTE = env_int("CHAT_MESSAGES_PER_MINUTE", 20, minimum=1)
CHAT_MESSAGE_BURST = env_int("CHAT_MESSAGE_BURST", 5, minimum=1)
CHAT_FRAMES_PER_SECOND = env_float("CHAT_FRAMES_PER_SECOND", 10.0, minimum=0.1)
CHAT_FRAME_BURST = env_int("CHAT_FRAME_BURST", 60, minimum=1)
LLM_MAX_STEPS = env_int("LLM_MAX_STEPS", 6, minimum=1)
LLM_MAX_TOKENS = env_int("LLM_MAX_TOKENS", 1024, minimum=16)
LLM_TOKEN_BUDGET = env_int("LLM_TOKEN_BUDGET", 12000, minimum=100)
LLM_TURN_BUDGET_SECONDS = env_float("LLM_TURN_BUDGET_SECONDS", max(3 * LLM_TIMEOUT_SECONDS, 30.0), minimum=1.0)
CELERY_BEAT_SCHEDULE["chat-proposals-expire"] = {"task": "chat.tasks.proposals_expire", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["chat-proposals-recover"] = {
    "task": "chat.tasks.proposals_recover", "schedule": 60.0, "options": {"expires": 60.0},
}

# Started by `manage.py serve` before the web server: each is a callable that starts one helper
# in the background when its real service is not configured (see resync_site/management/commands/serve.py).
EMBEDDED_SERVICES: list[str] = []
# The bundled mock HWA (demo plan) and the in-process plan poller; both do nothing when TWS_URL is set.
EMBEDDED_SERVICES += ["jobs.embedded.start_mock_hwa", "jobs.embedded.start_poller"]
# With a real HWA, Celery beat polls the plan (jobs/poll.py); the embedded default polls in-process.
CELERY_BEAT_SCHEDULE["jobs-poll-plan"] = {
    "task": "jobs.tasks.poll_plan",
    "schedule": float(TWS_POLL_SECONDS),
    "options": {"expires": float(TWS_POLL_SECONDS)},  # a poll that waited a whole interval is pointless
}

# Parts /readyz reports; a down part listed here makes it answer 503.
READINESS_CHECKS = [
    "resync_site.health.check_database",
    "resync_site.health.check_redis",
    "knowledge.selectors.check_vector_store",
    "jobs.health.check_hwa",
]

# --- Audit trail: exports, reports, anchoring, retention ------------------------------------
AUDIT_RETENTION_MONTHS = env_int("AUDIT_RETENTION_MONTHS", 13, minimum=1)
# Anchor files are meant to be copied off this machine (WORM storage, another host): point this
# at a mounted folder for that, so a rewrite of the whole database is still detectable.
AUDIT_ANCHOR_DIR = Path(env_str("AUDIT_ANCHOR_DIR", str(DATA_DIR / "audit" / "anchors"))).resolve()
AUDIT_ARCHIVE_DIR = Path(env_str("AUDIT_ARCHIVE_DIR", str(DATA_DIR / "audit" / "archive"))).resolve()
AUDIT_EXPORT_DIR = Path(env_str("AUDIT_EXPORT_DIR", str(DATA_DIR / "audit" / "exports"))).resolve()
# Exports of up to this many rows are written during the request; larger ones go to a worker.
AUDIT_EXPORT_INLINE_ROWS = env_int("AUDIT_EXPORT_INLINE_ROWS", 20_000, minimum=0)
CELERY_BEAT_SCHEDULE["audit-anchor-daily"] = {"task": "audit.tasks.anchor_daily", "schedule": 24 * 3600.0}
CELERY_BEAT_SCHEDULE["audit-report-monthly"] = {
    "task": "audit.tasks.report_monthly",
    "schedule": crontab(day_of_month="1", hour="3", minute="0"),
}
# Each sweep runs on the queue of the work it recovers, so only a worker that can run it picks it up.
CELERY_BEAT_SCHEDULE["knowledge-imports-recover"] = {
    "task": "knowledge.tasks.import_runs_recover", "schedule": WORK_SWEEP_SECONDS,
    "options": {"expires": WORK_SWEEP_SECONDS},
}
CELERY_BEAT_SCHEDULE["audit-exports-recover"] = {
    "task": "audit.tasks.exports_recover", "schedule": WORK_SWEEP_SECONDS, "options": {"expires": WORK_SWEEP_SECONDS},
}
EMBEDDED_SERVICES += ["resync_site.lib.work.start_embedded_recovery"]

# --- Authentication and roles ---------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "signin"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "signin"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if RESYNC_ENV == "test":
    # PBKDF2 costs ~0.3 s per hash on these machines; test personas are hashed hundreds of times.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_float("AXES_COOLOFF_MINUTES", 15, minimum=0) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
AXES_IPWARE_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)

OTP_TOTP_ISSUER = "Resync"

OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID")
OIDC_ENABLED = bool(OIDC_RP_CLIENT_ID)
if OIDC_ENABLED:
    OIDC_RP_CLIENT_SECRET = env_required("OIDC_RP_CLIENT_SECRET", why="OIDC_RP_CLIENT_ID is set")
    OIDC_OP_AUTHORIZATION_ENDPOINT = env_required("OIDC_OP_AUTHORIZATION_ENDPOINT", why="OIDC is enabled")
    OIDC_OP_TOKEN_ENDPOINT = env_required("OIDC_OP_TOKEN_ENDPOINT", why="OIDC is enabled")
    OIDC_OP_USER_ENDPOINT = env_required("OIDC_OP_USER_ENDPOINT", why="OIDC is enabled")
    OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_OP_JWKS_ENDPOINT")
    OIDC_RP_SIGN_ALGO = env_str("OIDC_RP_SIGN_ALGO", "RS256")
    OIDC_RP_SCOPES = env_str("OIDC_RP_SCOPES", "openid email profile")
    OIDC_ROLES_CLAIM = env_str("OIDC_ROLES_CLAIM", "groups")
    OIDC_VERIFY_SSL = env_bool("OIDC_VERIFY_SSL", True)
    # PKCE binds the code to this browser session; current IdPs (and django-oauth-toolkit) require it.
    OIDC_USE_PKCE = env_bool("OIDC_USE_PKCE", True)
    AUTHENTICATION_BACKENDS.append("resync_site.oidc.RoleMappingOIDCBackend")

# --- Internationalization -------------------------------------------------------------------
LANGUAGE_CODE = "pt-br"
LANGUAGES = [("pt-br", _("Portuguese (Brazil)")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "America/Sao_Paulo")
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
MEDIA_ROOT = DATA_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "resync_site.lib.errors.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": {"user": env_str("API_THROTTLE_RATE", "600/min")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Resync API",
    "DESCRIPTION": "Operations co-pilot for HCL Workload Automation.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI from the sidecar package (no CDN); the split view keeps its script out of the page for the CSP.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Enums named after their model, not their field: several APIs have a `status` with other values.
    "ENUM_NAME_OVERRIDES": {"ImportStatusEnum": "knowledge.models.ImportStatus"},
}

# --- Observability --------------------------------------------------------------------------
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128"])
LOG_FORMAT = env_choice("LOG_FORMAT", "json" if PRODUCTION else "text", ("json", "text"))
LOG_LEVEL = env_choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "resync_site.lib.logging.RequestIdFilter"},
        "redact": {"()": "resync_site.lib.logging.RedactSecretsFilter"},
    },
    "formatters": {
        "json": {"()": "resync_site.lib.logging.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL.upper()},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "LiteLLM": {"level": "WARNING"},
    },
}

# --- Security -------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600, minimum=300)
CSRF_COOKIE_HTTPONLY = False  # the chat page's JavaScript reads it for its POSTs
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# No inline scripts or third-party origins anywhere: every script and style is a static file.
SECURE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
    "base-uri": ["'self'"],
}
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    if env_bool("TRUST_X_FORWARDED_PROTO", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
# Outside production, static files are served straight from the source folders (no collectstatic).
WHITENOISE_USE_FINDERS = not PRODUCTION
if not PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
