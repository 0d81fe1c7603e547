from xbit_admin.env import env_bool
from xbit_admin.settings.base import *  # noqa: F403

DEBUG = env_bool("DJANGO_DEBUG", True)
LOG_JSON = env_bool("LOG_JSON", False)
