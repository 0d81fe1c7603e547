"""Switch fixtures: the trading and risk fixtures (markets, quotes, funded traders, positions opened
through the order path)."""

from risk.tests.conftest import balance, btc_mmr_0_004, open_position  # noqa: F401
from trading.tests.conftest import fund, hl_meta, internalization_on, markets, set_quote, trader  # noqa: F401
