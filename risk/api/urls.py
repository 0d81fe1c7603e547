from django.urls import path

from risk.api import views

urlpatterns = [
    path("ops/hedge", views.HedgeOverviewApi.as_view(), name="ops-hedge"),
    path("ops/hedge/orders", views.HedgeManualOrderApi.as_view(), name="ops-hedge-orders"),
    path("ops/hedge/mode", views.HedgeModeApi.as_view(), name="ops-hedge-mode"),
]
