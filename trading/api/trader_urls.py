from django.urls import path

from trading.api import algo_orders, funding, order_tools, orders, tpsl

urlpatterns = [
    path("account", orders.AccountApi.as_view(), name="account"),
    path("orders", orders.OrdersApi.as_view(), name="orders"),
    path("orders/batch", order_tools.OrdersBatchApi.as_view(), name="orders-batch"),
    path("orders/batch-cancel", order_tools.OrdersBatchCancelApi.as_view(), name="orders-batch-cancel"),
    path("orders/cancel-all", order_tools.OrdersCancelAllApi.as_view(), name="orders-cancel-all"),
    path("orders/schedule-cancel", order_tools.ScheduleCancelApi.as_view(), name="orders-schedule-cancel"),
    path("orders/<int:order_id>", order_tools.OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<int:order_id>/cancel", orders.OrderCancelApi.as_view(), name="order-cancel"),
    path("orders/<int:order_id>/modify", order_tools.OrderModifyApi.as_view(), name="order-modify"),
    path("positions", orders.PositionsApi.as_view(), name="positions"),
    path("positions/<int:position_id>/close", orders.PositionCloseApi.as_view(), name="position-close"),
    path("positions/<int:position_id>/margin", orders.PositionMarginApi.as_view(), name="position-margin"),
    path("positions/<int:position_id>/tpsl", tpsl.PositionTpslApi.as_view(), name="position-tpsl"),
    path("tpsl", tpsl.TpslListApi.as_view(), name="tpsl"),
    path("tpsl/<int:tpsl_id>/cancel", tpsl.TpslCancelApi.as_view(), name="tpsl-cancel"),
    path("leverage", orders.LeverageApi.as_view(), name="leverage"),
    path("fills", orders.FillsApi.as_view(), name="fills"),
    path("funding", funding.FundingApi.as_view(), name="funding"),
    path("algo-orders", algo_orders.AlgoOrdersApi.as_view(), name="algo-orders"),
    path("algo-orders/<int:algo_id>", algo_orders.AlgoOrderDetailApi.as_view(), name="algo-order-detail"),
    path(
        "algo-orders/<int:algo_id>/cancel", algo_orders.AlgoOrderCancelApi.as_view(), name="algo-order-cancel"
    ),
]
