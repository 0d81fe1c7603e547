from xbit_admin.settings.base import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed: tests hash many passwords
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
LOG_JSON = False
LOGGING["root"]["level"] = "WARNING"  # type: ignore[index]  # noqa: F405
CACHES["default"]["KEY_PREFIX"] = "xbit-test"  # noqa: F405
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = "xbit-test-ch"  # type: ignore[index]  # noqa: F405

# ETH and ARBITRUM on the EVM adapter as in production; TRON and SOL on the simulated chains until
# their own adapters replace them. The EVM RPC URLs lead nowhere (a closed port: the node is down at
# once), so a test never talks to a node `make run` may have started: the anvil fixtures
# (wallets/tests/evm_fixtures.py: evm, evm_arbitrum, evm_own) start nodes and wire them in.
CHAIN_ADAPTERS = {"ETH": "evm", "ARBITRUM": "evm", "TRON": "sandbox", "SOL": "sandbox"}
EVM_CHAINS = {chain: {**conf, "rpc_url": "http://127.0.0.1:9"} for chain, conf in EVM_CHAINS.items()}  # noqa: F405
