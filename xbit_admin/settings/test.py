from xbit_admin.settings.base import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed: tests hash many passwords
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
LOG_JSON = False
LOGGING["root"]["level"] = "WARNING"  # type: ignore[index]  # noqa: F405
CACHES["default"]["KEY_PREFIX"] = "xbit-test"  # noqa: F405
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = "xbit-test-ch"  # type: ignore[index]  # noqa: F405

# Suites that predate the EVM adapter run every chain on the simulated chains; the wallets' anvil
# fixture (wallets/tests/evm_fixtures.py) switches ETH and ARBITRUM to anvil nodes it starts.
CHAIN_ADAPTERS = {"ETH": "sandbox", "ARBITRUM": "sandbox", "TRON": "sandbox", "SOL": "sandbox"}
