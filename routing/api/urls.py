from django.urls import path

from routing.api import views

urlpatterns = [
    path("ops/routing", views.RoutingOverviewApi.as_view(), name="ops-routing"),
    path("ops/routing/decisions", views.DecisionLogApi.as_view(), name="ops-routing-decisions"),
    path("ops/routing/mode-logs", views.ModeLogApi.as_view(), name="ops-routing-mode-logs"),
    path("ops/routing/<str:asset>/mode", views.ModeSwitchApi.as_view(), name="ops-routing-mode"),
    path("ops/routing/<str:asset>/config", views.ConfigUpdateApi.as_view(), name="ops-routing-config"),
]
