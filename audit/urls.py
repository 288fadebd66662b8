from __future__ import annotations

from django.urls import path

from audit import views

app_name = "audit"

urlpatterns = [
    path("", views.events, name="events"),
    path("events/<int:sequence>/", views.event_detail, name="event_detail"),
    path("exports/", views.exports, name="exports"),
    path("exports/<int:pk>/", views.export_detail, name="export_detail"),
    path("exports/<int:pk>/download/", views.export_download, {"what": "file"}, name="export_download"),
    path("exports/<int:pk>/manifest/", views.export_download, {"what": "manifest"}, name="export_manifest"),
    path("reports/", views.reports, name="reports"),
    path("reports/<int:pk>/download/", views.report_download, name="report_download"),
]
