from django.db import models


class Project(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    archived = models.BooleanField(default=False)


class Board(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="boards")
    name = models.SlugField()
    title = models.CharField(max_length=100, blank=True)

    class Meta:
        unique_together = [("project", "name")]


class Card(models.Model):
    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="cards")
    title = models.CharField(max_length=200)
    done = models.BooleanField(default=False)


class Member(models.Model):
    username = models.SlugField(unique=True)
    email = models.EmailField()
    full_name = models.CharField(max_length=100, blank=True)


class Tag(models.Model):
    label = models.SlugField(unique=True)
    color = models.CharField(max_length=20, blank=True)


class Invoice(models.Model):
    number = models.SlugField(unique=True)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    paid = models.BooleanField(default=False)
