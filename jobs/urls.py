"""Pages (dashboard, job detail, job log, action confirmation) and the plan's REST API."""

from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from jobs import api, views

app_name = "jobs"

router = SimpleRouter()
router.register("jobs", api.JobViewSet, basename="api-job")
router.register("job-streams", api.JobStreamViewSet, basename="api-jobstream")
router.register("workstations", api.WorkstationViewSet, basename="api-workstation")
router.register("status-events", api.StatusEventViewSet, basename="api-statusevent")

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("jobs/<str:hwa_id>/", views.job_detail, name="detail"),
    path("jobs/<str:hwa_id>/log/", views.job_log, name="log"),
    path("jobs/<str:hwa_id>/action/", views.job_action, name="action"),
    path("api/dashboard/", api.DashboardView.as_view(), name="api-dashboard"),
    path("api/", include(router.urls)),
]
