"""Settings shared by every environment. Nothing here reads a value that differs per deployment
without going through the strict env helper."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from core.env import env_bool, env_int, env_list, env_str
from core.rate_limit_rules import parse_limits
from core.redis_retry import restart_tolerant

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = env_str("DJANGO_SECRET_KEY", "insecure-local-only-key-change-me-in-production-0123456789")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "channels",
    "core.accounts",
    "core.audit",
    "core.events",
    "core.alerts",
    "core.platform",
    "core.switches",
    "xbit_admin.console",
    "wallets",
    "trading",
    "routing",
    "risk",
    "xbit_admin.switches",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.observability.RequestContextMiddleware",
    "core.request_guard.RequestGuardMiddleware",  # NUL refusals, no-store, rate-limit headers
    "csp.middleware.CSPMiddleware",  # CONTENT_SECURITY_POLICY below
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "core.switches.middleware.ApiModeMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# The proxies (addresses or networks) whose X-Forwarded-For is believed; none by default,
# so a client reaching a web process directly cannot choose the address allow-lists, throttles and
# security events see (core.request_guard; the servers run with --no-proxy-headers).
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
# Request bodies: the ASGI guard answers 413 above this before Django reads the body; Django's own
# limit for form bodies is the same; JSON bodies nest at most MAX_JSON_DEPTH deep (core.api_input).
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
MAX_JSON_DEPTH = 32

# Content-Security-Policy (django-csp) on every page: the console loads scripts and styles from its own
# static files only (no inline script, no eval); inline style *attributes* stay allowed for the bars'
# widths the templates set; its websockets are same-origin. The API's docs use drf-spectacular's split
# Swagger view (no inline script) and the sidecar's files.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

ROOT_URLCONF = "xbit_admin.urls"
ASGI_APPLICATION = "xbit_admin.asgi.application"
WSGI_APPLICATION = "xbit_admin.wsgi.application"

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
                "xbit_admin.console.context.console_nav",
            ],
        },
    },
]


def database_from_url(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured("DATABASE_URL must be a postgresql:// URL (XBIT runs on PostgreSQL only)")
    pool_max = env_int("DB_POOL_MAX", 0)
    options: dict[str, object] = {"application_name": env_str("DB_APPLICATION_NAME", "xbit")}
    # the order path's statements run as prepared statements from their third send on a connection
    # (core.sql.prepared); -1 turns them off, as a transaction-pooling PgBouncer requires
    prepare_threshold = env_int("DB_PREPARE_THRESHOLD", 2)
    options["prepare_threshold"] = None if prepare_threshold < 0 else prepare_threshold
    if pool_max:
        options["pool"] = {"min_size": 1, "max_size": pool_max, "timeout": 10}
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": (parts.path or "/xbit").lstrip("/") or "xbit",
        "USER": parts.username or "postgres",
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or 5432),
        # Django under ASGI runs each request's sync code in a thread of its own, so a per-thread
        # persistent connection (CONN_MAX_AGE) is opened anew per request (~several ms); DB_POOL_MAX > 0
        # shares a psycopg pool per process instead (then CONN_MAX_AGE must be 0).
        "CONN_MAX_AGE": 0 if pool_max else env_int("DB_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": not pool_max,
        "ATOMIC_REQUESTS": False,
        "OPTIONS": options,
        "TEST": {"NAME": env_str("DB_TEST_NAME", "test_xbit")},
    }


DATABASE_URL = env_str("DATABASE_URL", "postgresql://postgres@127.0.0.1:54329/xbit")
DATABASES = {"default": database_from_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:63799/0")


def caches_for(redis_url: str) -> dict[str, Any]:
    """Django's cache on the platform's Redis (production builds it from its own ``REDIS_URL``)."""
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": "xbit",
            "OPTIONS": {
                **restart_tolerant(redis_url),  # throttles and caches ride out a Redis restart
                "pool_class": "core.redis_pool.SharedConnectionPool",  # not a connection per request
            },
        }
    }


CACHES = caches_for(REDIS_URL)


def channel_layers_for(redis_url: str) -> dict[str, Any]:
    """Channels' layer on the platform's Redis (production builds it from its own ``REDIS_URL``)."""
    return {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": "xbit-ch"},
        }
    }


CHANNEL_LAYERS = channel_layers_for(REDIS_URL)

AUTH_USER_MODEL = "accounts.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:overview"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # uPlot, installed from npm by `make assets` (see Makefile); served as /static/vendor/uplot/…
    ("vendor/uplot", BASE_DIR / ".xbit" / "node" / "node_modules" / "uplot" / "dist"),
]

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 8 * 3600
CSRF_COOKIE_HTTPONLY = False  # the console's small JS reads it for fetch() posts

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.accounts.authentication.ApiKeyAuthentication",
        "core.accounts.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "core.accounts.permissions.KeyScope",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "core.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON bodies with size, depth and NUL limits (core.api_input); forms as DRF reads them
    "DEFAULT_PARSER_CLASSES": [
        "core.api_input.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": None,
    # DRF's throttles would read X-Forwarded-For from anyone; REMOTE_ADDR is already the client
    # (core.request_guard, TRUSTED_PROXIES)
    "NUM_PROXIES": 0,
    # the general rate limit: per API key, user and address, separate budgets (core.rate_limit)
    "DEFAULT_THROTTLE_CLASSES": ["core.rate_limit.ApiRateLimit"],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "XBIT trading API",
    "DESCRIPTION": "Perpetual futures on Hyperliquid's assets: account, markets, orders, positions, money.\n\n"
    "Rate limits: every request spends one unit of a budget (`orders`: placing, cancelling, closing; "
    "`reads`; `writes`: other changes) per API key, per user and per client address. Each answer "
    "carries the tightest budget (`RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`, "
    "`RateLimit-Policy`); beyond it the answer is 429 `RATE_LIMITED` with `Retry-After`. Request bodies "
    "are at most 1 MiB (413 `REQUEST_TOO_LARGE`).\n\n"
    "Streams (websockets): the user data stream `/ws/v1/user` (orders, fills, positions, balances, "
    "liquidations, funding, deposits, withdrawals; JWT or API-key signature as here; a per-user sequence "
    "to resume from) and the market stream `/ws/v1/market` — messages, error codes and close codes in "
    "the repository's `docs/stream.md` and `docs/asyncapi.yaml` (AsyncAPI 2.6).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",  # served from our static files: no CDN at run time
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # the API takes JSON; DRF's form parsers also read forms (empty field = omitted), not documented
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],
    # one name per choice set that several serializers share (the generator warns otherwise)
    "ENUM_NAME_OVERRIDES": {
        "SideEnum": "trading.models.Side",
        "MarginModeEnum": "trading.models.MarginMode",
        "HedgeModeEnum": ["OFF", "SHADOW", "LIVE"],
        "AccountKindEnum": "wallets.models.AccountKind",
        "TpslStatusEnum": "trading.orders.trigger_models.TpslStatus",
        "OrderStatusEnum": "trading.models.Order.Status",
        "AlgoOrderStatusEnum": "trading.orders.parent_models.AlgoOrder.Status",
    },
    # every operation documents its error statuses with the one Error body
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.api_schema.error_responses_hook",
    ],
}

# General API rate limits (spec 08; core.rate_limit explains why these are settings): JSON merged
# over the defaults, e.g. {"orders": {"key": [100, 10]}} (a burst of 100 refilled over 10 s).
# API_RATE_LIMITS_LIFTED puts every limit at 10^9 (the benchmarks and drills, bench/common.py).
API_RATE_LIMITS = parse_limits(env_str("API_RATE_LIMITS", ""))
API_RATE_LIMITS_LIFTED = env_bool("API_RATE_LIMITS_LIFTED", False)
# POST /api/v1/orders answered by the order lane (xbit_admin.order_lane: DRF's own steps without
# Django's middleware chain); off, every order goes through the full path. Answers are the same.
ORDER_LANE = env_bool("ORDER_LANE", True)

# JWT for interactive trader clients (spec 08: access token < 1 h).
JWT_ACCESS_TTL = timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15))
JWT_REFRESH_TTL = timedelta(days=env_int("JWT_REFRESH_DAYS", 14))
JWT_SIGNING_KEY = env_str("JWT_SIGNING_KEY", SECRET_KEY)

# HMAC API keys (spec 08).
API_KEY_DEFAULT_RECV_WINDOW_MS = 5_000
API_KEY_MAX_RECV_WINDOW_MS = 60_000
API_KEY_MAX_FUTURE_SKEW_MS = 1_000
# Key used to encrypt API-key HMAC secrets at rest (they must be recoverable to verify signatures).
SECRETS_ENCRYPTION_KEY = env_str("SECRETS_ENCRYPTION_KEY", "")

# Sign-in lockout (core.accounts.lockout): this many wrong passwords lock the (account, address)
# pair for LOGIN_LOCKOUT_BASE_SECONDS, doubling with each lockout of the pair in a day up to
# LOGIN_LOCKOUT_SECONDS; wrong second factors lock the account itself for LOGIN_LOCKOUT_SECONDS.
LOGIN_MAX_FAILURES = env_int("LOGIN_MAX_FAILURES", 5)
LOGIN_LOCKOUT_BASE_SECONDS = env_int("LOGIN_LOCKOUT_BASE_SECONDS", 60)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900)
# Where emailed links point (the account unlock page; the withdrawal confirmation keeps its own setting).
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
OTP_TOTP_ISSUER = "XBIT"

# Celery: queues by priority (architecture: critical, hedge, default, wallets).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"

# Venues and external systems: production points these at real endpoints; no code path differs.
HL_API_URL = env_str("HL_API_URL", "http://127.0.0.1:3001")
# EVM chains (ETH, ARBITRUM) over JSON-RPC (wallets.chains.evm). Local defaults: the anvil nodes that
# `make run` starts (sandbox/evm), where our USDT/USDC contracts are the first two deployments of
# anvil's first dev account, hence fixed addresses. Production: mainnet contracts (.env.example).
LOCAL_EVM_USDT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
LOCAL_EVM_USDC = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
EVM_CHAINS = {
    "ETH": {
        "rpc_url": env_str("ETH_RPC_URL", "http://127.0.0.1:8545"),
        "chain_id": env_int("ETH_CHAIN_ID", 1),
        "tokens": {
            "USDT": env_str("ETH_USDT_ADDRESS", LOCAL_EVM_USDT),
            "USDC": env_str("ETH_USDC_ADDRESS", LOCAL_EVM_USDC),
        },
    },
    "ARBITRUM": {
        "rpc_url": env_str("ARBITRUM_RPC_URL", "http://127.0.0.1:8546"),
        "chain_id": env_int("ARBITRUM_CHAIN_ID", 42161),
        "tokens": {"USDC": env_str("ARBITRUM_USDC_ADDRESS", LOCAL_EVM_USDC)},
    },
}
# TRON over the full node's HTTP API and TronGrid's /v1 (one base URL; wallets.chains.tron, tronpy) and
# Solana over JSON-RPC (wallets.chains.solana, solana-py). Local defaults: the stand-ins `make run`
# starts (sandbox/tron, sandbox/solana). TRON_API_KEY is sent as TRON-PRO-API-KEY when set. Operator
# numbers (confirmations, TRON's fee limit and expiry) are wallets' audited ChainConfig, not settings.
TRON_RPC_URL = env_str("TRON_RPC_URL", "http://127.0.0.1:3004")
TRON_API_KEY = env_str("TRON_API_KEY", "")
SOLANA_RPC_URL = env_str("SOLANA_RPC_URL", "http://127.0.0.1:3005")
# chain -> adapter kind (wallets.chains.ADAPTER_FACTORIES)
CHAIN_ADAPTERS = {"ETH": "evm", "ARBITRUM": "evm", "TRON": "tron", "SOL": "solana"}
# The HD seed of the EVM chains' keys (BIP-39 words; wallets.chains.hd). This default is for local
# development only; production requires its own (production.py), kept in the secret store.
WALLET_HD_MNEMONIC = env_str(
    "WALLET_HD_MNEMONIC", "skill sense car mule sentence cake pulse fly tobacco globe stool cradle"
)
SLACK_WEBHOOK_URL = env_str("SLACK_WEBHOOK_URL", "")
PAGERDUTY_EVENTS_URL = env_str("PAGERDUTY_EVENTS_URL", "")
PAGERDUTY_ROUTING_KEY = env_str("PAGERDUTY_ROUTING_KEY", "")

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "XBIT <no-reply@xbit.local>")
# SMTP when EMAIL_BACKEND is django.core.mail.backends.smtp.EmailBackend.
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)

# Trader accounts: emailed codes, Sign-In with Ethereum, KYC provider.
ACCOUNT_CODE_TTL_MINUTES = env_int("ACCOUNT_CODE_TTL_MINUTES", 15)
ACCOUNT_CODE_MAX_ATTEMPTS = env_int("ACCOUNT_CODE_MAX_ATTEMPTS", 5)
ACCOUNT_CODE_RESEND_SECONDS = env_int("ACCOUNT_CODE_RESEND_SECONDS", 60)
SIWE_DOMAIN = env_str("SIWE_DOMAIN", "localhost:8000")
SIWE_CHAIN_IDS = env_list("SIWE_CHAIN_IDS", ["1", "42161"])  # Ethereum, Arbitrum One
SIWE_NONCE_TTL_SECONDS = env_int("SIWE_NONCE_TTL_SECONDS", 600)
KYC_PROVIDER = env_str("KYC_PROVIDER", "core.accounts.kyc.ManualKycProvider")

# Observability (spec 08; core.metrics, .health, .collectors). The platform collectors and the
# advisory readiness checks read the domain apps, so the core names them by dotted path.
METRICS_COLLECTORS = ["xbit_admin.collectors.PlatformCollector"]
METRICS_CACHE_SECONDS = 2.0
METRICS_BEARER_TOKEN = env_str("METRICS_BEARER_TOKEN", "")
HEALTH_ADVISORY_CHECKS = {
    "hl": "xbit_admin.collectors.hl_connectivity",
    "breakers": "xbit_admin.collectors.breakers_status",
}
HEALTH_HL_CACHE_SECONDS = 15.0
HEALTH_HL_TIMEOUT_SECONDS = 2.0
LOG_REQUESTS = env_bool("LOG_REQUESTS", False)  # one "http.request" line per request (on in production)

# One level for every process (web, Celery worker and beat, feed, …): Celery does not install logging of
# its own (xbit_admin/celery.py), so these settings decide there too and its -l option can only add
# detail to Celery's own lines.
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOG_JSON = env_bool("LOG_JSON", True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structured": {
            "()": "core.observability.StructlogFormatter",
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own handlers (a console one under DEBUG) would print its lines a second time, plain
        "django": {"handlers": [], "level": "NOTSET"},
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "websocket": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}
