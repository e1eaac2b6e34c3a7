"""ViewSets as DRF services write them: lookups on slugs chosen by users (`lookup_field`), resources nested
under a parent's slug, extra routes from @action beside the item routes (a literal word where an id could
stand: /invoices/summary/ next to /invoices/{number}/)."""
from django.shortcuts import get_object_or_404
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from .models import Board, Card, Invoice, Member, Project, Tag
from .serializers import (
    BoardSerializer,
    CardSerializer,
    InvoiceSerializer,
    MemberSerializer,
    ProjectSerializer,
    TagSerializer,
)


class ProjectViewSet(viewsets.ModelViewSet):
    queryset = Project.objects.all().order_by("slug")
    serializer_class = ProjectSerializer
    lookup_field = "slug"

    @action(detail=True, methods=["post"])
    def archive(self, request, slug=None):
        project = self.get_object()
        project.archived = True
        project.save()
        return Response(ProjectSerializer(project).data)


class BoardViewSet(viewsets.ModelViewSet):
    serializer_class = BoardSerializer
    lookup_field = "name"

    def get_queryset(self):
        return Board.objects.filter(project__slug=self.kwargs["project_slug"]).order_by("name")

    def perform_create(self, serializer):
        serializer.save(project=get_object_or_404(Project, slug=self.kwargs["project_slug"]))


class CardViewSet(viewsets.ModelViewSet):
    serializer_class = CardSerializer

    def get_queryset(self):
        return Card.objects.filter(
            board__project__slug=self.kwargs["project_slug"], board__name=self.kwargs["board_name"]
        ).order_by("id")

    def perform_create(self, serializer):
        board = get_object_or_404(Board, project__slug=self.kwargs["project_slug"], name=self.kwargs["board_name"])
        serializer.save(board=board)


class MemberViewSet(viewsets.ModelViewSet):
    queryset = Member.objects.all().order_by("username")
    serializer_class = MemberSerializer
    lookup_field = "username"


class TagViewSet(viewsets.ModelViewSet):
    queryset = Tag.objects.all().order_by("label")
    serializer_class = TagSerializer
    lookup_field = "label"


class InvoiceViewSet(viewsets.ModelViewSet):
    queryset = Invoice.objects.all().order_by("number")
    serializer_class = InvoiceSerializer
    lookup_field = "number"

    @action(detail=False, methods=["get"])
    def summary(self, request):
        qs = self.get_queryset()
        return Response({"count": qs.count(), "unpaid": qs.filter(paid=False).count()})
