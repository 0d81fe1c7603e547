from django.urls import path

from trading.api import markets

urlpatterns = [
    path("markets", markets.MarketsApi.as_view(), name="markets"),
    path("markets/<str:asset>", markets.MarketDetailApi.as_view(), name="market-detail"),
]
