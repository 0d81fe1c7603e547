"""ASGI entry: HTTP through Django (an order placement through the order lane,
``xbit_admin.order_lane``), websockets through Channels (console topics, heartbeat; the trader
streams under /ws/v1/)."""

import os

import django

from xbit_admin.asgi_handler import ReusingASGIHandler
from xbit_admin.cpu_affinity import pin_process

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "xbit_admin.settings.local")
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application does
pin_process()  # WEB_CPUS: the process's threads on one CPU (xbit_admin/cpu_affinity.py)
django_asgi_app = ReusingASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from core.request_guard import guarded  # noqa: E402
from xbit_admin.order_lane import order_lane  # noqa: E402
from xbit_admin.routing import websocket_application, websocket_urlpatterns  # noqa: E402

# guarded: the client's address (X-Forwarded-For only from TRUSTED_PROXIES) and the body size limit,
# before Django or Channels read anything (core/request_guard.py)
application = guarded(
    ProtocolTypeRouter(
        {
            "http": order_lane(django_asgi_app),  # POST /api/v1/orders without the middleware chain
            "websocket": websocket_application(
                AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
            ),
        }
    )
)
