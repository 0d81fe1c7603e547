from xbit_admin.settings.base import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed: tests hash many passwords
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
LOG_JSON = False
LOGGING["root"]["level"] = "WARNING"  # type: ignore[index]  # noqa: F405
CACHES["default"]["KEY_PREFIX"] = "xbit-test"  # noqa: F405
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = "xbit-test-ch"  # type: ignore[index]  # noqa: F405

# Every chain on its own adapter as in production (ETH and ARBITRUM: EVM JSON-RPC; TRON: tronpy; SOL:
# solana-py). Their RPC URLs lead nowhere (a closed port: the node is down at once), so a test never
# talks to a node `make run` may have started: the fixtures start local nodes and wire them in
# (wallets/tests/evm_fixtures.py: evm, evm_arbitrum, evm_own; wallets/tests/tron_sol_fixtures.py: tron, sol).
CHAIN_ADAPTERS = {"ETH": "evm", "ARBITRUM": "evm", "TRON": "tron", "SOL": "solana"}
EVM_CHAINS = {chain: {**conf, "rpc_url": "http://127.0.0.1:9"} for chain, conf in EVM_CHAINS.items()}  # noqa: F405
TRON_RPC_URL = "http://127.0.0.1:9"
SOLANA_RPC_URL = "http://127.0.0.1:9"
