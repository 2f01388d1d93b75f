"""The example site's pages and its ingest API."""

from django.urls import path

from example_project.events import views

urlpatterns = [
    path("", views.index, name="index"),
    path("projects/<int:project_id>/", views.project, name="project"),
    path("cluster/", views.cluster, name="cluster"),
    path("api/<int:project_id>/events/", views.ingest, name="ingest"),
]
