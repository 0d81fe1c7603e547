"""Settings of the processes a benchmark starts against its own sandbox: the test settings, with the
TRON and Solana endpoints taken from the environment (``TRON_RPC_URL``, ``SOLANA_RPC_URL``: the
sandbox's stand-ins). The test settings themselves point every chain at a closed port, so that a test
never reaches a node ``make run`` may have started."""

from core.env import env_str
from xbit_admin.settings.test import *  # noqa: F403

TRON_RPC_URL = env_str("TRON_RPC_URL", TRON_RPC_URL)  # noqa: F405
SOLANA_RPC_URL = env_str("SOLANA_RPC_URL", SOLANA_RPC_URL)  # noqa: F405
