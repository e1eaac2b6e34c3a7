from rest_framework import serializers

from .models import Board, Card, Invoice, Member, Project, Tag


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["slug", "name", "archived"]


class BoardSerializer(serializers.ModelSerializer):
    class Meta:
        model = Board
        fields = ["name", "title"]


class CardSerializer(serializers.ModelSerializer):
    class Meta:
        model = Card
        fields = ["id", "title", "done"]


class MemberSerializer(serializers.ModelSerializer):
    class Meta:
        model = Member
        fields = ["username", "email", "full_name"]


class TagSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["label", "color"]


class InvoiceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Invoice
        fields = ["number", "amount", "paid"]
