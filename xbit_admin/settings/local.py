from core.env import env_bool, env_str
from xbit_admin.settings.base import *  # noqa: F403

DEBUG = env_bool("DJANGO_DEBUG", True)
LOG_JSON = env_bool("LOG_JSON", False)

# `make run` is quiet: warnings and errors from every library, the platform's own INFO lines (feed
# leadership, market syncs, …); not Celery's line per beat tick and per task, which would scroll the
# terminal twice a second. `make run VERBOSE=1` (LOG_LEVEL=INFO) shows every library's INFO lines,
# LOG_LEVEL=DEBUG everything.
LOG_LEVEL = env_str("LOG_LEVEL", "WARNING").upper()
PLATFORM_LOGGERS = ("xbit", "core", "xbit_admin", "trading", "risk", "wallets", "routing", "sandbox")
LOGGING["root"]["level"] = LOG_LEVEL  # type: ignore[index]  # noqa: F405
LOGGING["loggers"].update(  # type: ignore[attr-defined]  # noqa: F405
    {name: {"level": "DEBUG" if LOG_LEVEL == "DEBUG" else "INFO"} for name in PLATFORM_LOGGERS}
)

# Alert notifiers: `make run` points them at the sandbox's receivers (python -m sandbox, port 3003);
# the env overrides (empty = channel off).
SLACK_WEBHOOK_URL = env_str("SLACK_WEBHOOK_URL", "http://127.0.0.1:3003/slack/xbit-alerts")
PAGERDUTY_EVENTS_URL = env_str("PAGERDUTY_EVENTS_URL", "http://127.0.0.1:3003/pagerduty/v2/enqueue")
PAGERDUTY_ROUTING_KEY = env_str("PAGERDUTY_ROUTING_KEY", "xbit-local-dummy-routing-key-000")
ALERTS_CONSOLE_URL = env_str("ALERTS_CONSOLE_URL", f"http://127.0.0.1:{env_str('XBIT_PORT', '8000')}")
ALERTS_SOURCE = env_str("ALERTS_SOURCE", "xbit-local")
