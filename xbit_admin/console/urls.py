from django.urls import path

from xbit_admin.console import views

app_name = "console"

urlpatterns = [
    path("login/", views.login_view, name="login"),
    path("otp/", views.otp_view, name="otp"),
    path("logout/", views.logout_view, name="logout"),
    path("", views.overview_view, name="overview"),
]
