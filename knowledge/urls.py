from __future__ import annotations

from django.urls import path

from knowledge import api, views

urlpatterns = [
    path("kb/<str:external_id>/", views.entry_detail, name="kb-entry"),
    path("api/kb/search/", api.SearchView.as_view(), name="kb-api-search"),
    path("api/kb/import/", api.ImportView.as_view(), name="kb-api-import"),
    path("api/kb/import/<uuid:run_id>/", api.ImportRunView.as_view(), name="kb-api-import-run"),
]
