from django.urls import path

from trading.api import orders

urlpatterns = [
    path("account", orders.AccountApi.as_view(), name="account"),
    path("orders", orders.OrdersApi.as_view(), name="orders"),
    path("orders/<int:order_id>", orders.OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<int:order_id>/cancel", orders.OrderCancelApi.as_view(), name="order-cancel"),
    path("positions", orders.PositionsApi.as_view(), name="positions"),
    path("positions/<int:position_id>/close", orders.PositionCloseApi.as_view(), name="position-close"),
    path("positions/<int:position_id>/margin", orders.PositionMarginApi.as_view(), name="position-margin"),
    path("leverage", orders.LeverageApi.as_view(), name="leverage"),
    path("fills", orders.FillsApi.as_view(), name="fills"),
]
