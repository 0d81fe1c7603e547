from xbit_admin.env import env_bool, env_str
from xbit_admin.settings.base import *  # noqa: F403

DEBUG = env_bool("DJANGO_DEBUG", True)
LOG_JSON = env_bool("LOG_JSON", False)

# Alert notifiers: `make run` points them at the sandbox's receivers (python -m sandbox, port 3003);
# the env overrides (empty = channel off).
SLACK_WEBHOOK_URL = env_str("SLACK_WEBHOOK_URL", "http://127.0.0.1:3003/slack/xbit-alerts")
PAGERDUTY_EVENTS_URL = env_str("PAGERDUTY_EVENTS_URL", "http://127.0.0.1:3003/pagerduty/v2/enqueue")
PAGERDUTY_ROUTING_KEY = env_str("PAGERDUTY_ROUTING_KEY", "xbit-local-dummy-routing-key-000")
ALERTS_CONSOLE_URL = env_str("ALERTS_CONSOLE_URL", f"http://127.0.0.1:{env_str('XBIT_PORT', '8000')}")
ALERTS_SOURCE = env_str("ALERTS_SOURCE", "xbit-local")
