"""Production: every secret and endpoint from the environment, TLS terminated at the edge.

``manage.py check --deploy`` is clean with these settings (``xbit_admin/tests/test_deploy.py`` runs it
with the variables of ``.env.example``). Required variables raise ``ImproperlyConfigured`` at start-up
when missing — nothing falls back to a development default.
"""

from core.env import env_bool, env_int, env_list, env_str
from xbit_admin.settings.base import *  # noqa: F403
from xbit_admin.settings.base import MIDDLEWARE, caches_for, channel_layers_for, database_from_url

DEBUG = False
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
JWT_SIGNING_KEY = env_str("JWT_SIGNING_KEY")
SECRETS_ENCRYPTION_KEY = env_str("SECRETS_ENCRYPTION_KEY")

# Endpoints: no embedded-database default in production.
DATABASE_URL = env_str("DATABASE_URL")
DATABASES = {"default": database_from_url(DATABASE_URL)}
REDIS_URL = env_str("REDIS_URL")
CACHES = caches_for(REDIS_URL)  # as in development, on production's Redis
CHANNEL_LAYERS = channel_layers_for(REDIS_URL)
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
HL_API_URL = env_str("HL_API_URL")
WALLET_HD_MNEMONIC = env_str("WALLET_HD_MNEMONIC")
# the EVM nodes and the real token contracts (the base settings' defaults are the local anvil ones)
EVM_CHAINS["ETH"]["rpc_url"] = env_str("ETH_RPC_URL")  # noqa: F405
EVM_CHAINS["ETH"]["tokens"] = {"USDT": env_str("ETH_USDT_ADDRESS"), "USDC": env_str("ETH_USDC_ADDRESS")}  # noqa: F405
EVM_CHAINS["ARBITRUM"]["rpc_url"] = env_str("ARBITRUM_RPC_URL")  # noqa: F405
EVM_CHAINS["ARBITRUM"]["tokens"] = {"USDC": env_str("ARBITRUM_USDC_ADDRESS")}  # noqa: F405
# TRON's node / TronGrid and Solana's RPC (the base settings' defaults are the local stand-ins)
TRON_RPC_URL = env_str("TRON_RPC_URL")
SOLANA_RPC_URL = env_str("SOLANA_RPC_URL")

# Hosts: the public names only; probes and Prometheus reach pods by IP and are answered by
# ProbeMiddleware before host validation (core/health.py).
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env_list(
    "DJANGO_CSRF_TRUSTED_ORIGINS",
    [
        f"https://*{host}" if host.startswith(".") else f"https://{host}"
        for host in ALLOWED_HOSTS
        if host != "*"
    ],
)
MIDDLEWARE = ["core.health.ProbeMiddleware", *MIDDLEWARE]

# TLS at the edge: the proxy sets X-Forwarded-Proto. REMOTE_ADDR is the client when the proxy is one of
# TRUSTED_PROXIES (core/request_guard.py; uvicorn runs with --no-proxy-headers), which API-key IP
# allow-lists, throttles and security events rely on.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"

# Static files are collected into the image at build time (Dockerfile) and served by WhiteNoise with
# hashed names, so they can be cached forever.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Mail carries sign-up codes and withdrawal tokens: never the console backend (it would log them).
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)

# /metrics exposes balances and exposure: Prometheus presents this token (k8s Secret / .env).
METRICS_BEARER_TOKEN = env_str("METRICS_BEARER_TOKEN")

LOG_JSON = True
LOG_REQUESTS = env_bool("LOG_REQUESTS", True)

# drf-spectacular's deploy check regenerates the OpenAPI schema and reports naming warnings
# (duplicate component names, authenticators without an extension): documentation quality owned by
# the API apps, not deployment safety. Schema *errors* (drf_spectacular.E001/W002) still fail it.
SILENCED_SYSTEM_CHECKS = ["drf_spectacular.W001"]
