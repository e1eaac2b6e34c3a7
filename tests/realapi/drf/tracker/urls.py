"""Routers with DRF's trailing slashes; nested routes are plain routers mounted under the parent's
lookup, the way services do it without an extra package."""
from django.urls import include, path
from rest_framework.routers import DefaultRouter, SimpleRouter

from . import views

router = DefaultRouter()
router.register("projects", views.ProjectViewSet, basename="project")
router.register("members", views.MemberViewSet, basename="member")
router.register("tags", views.TagViewSet, basename="tag")
router.register("invoices", views.InvoiceViewSet, basename="invoice")

boards = SimpleRouter()
boards.register("boards", views.BoardViewSet, basename="board")
cards = SimpleRouter()
cards.register("cards", views.CardViewSet, basename="card")

urlpatterns = [
    path("api/v2/", include(router.urls)),
    path("api/v2/projects/<slug:project_slug>/", include(boards.urls)),
    path("api/v2/projects/<slug:project_slug>/boards/<slug:board_name>/", include(cards.urls)),
]
