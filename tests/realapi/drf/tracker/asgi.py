"""ASGI entry point: the tracker is served by uvicorn, as Django services are deployed (Django's own
development server answers each request tens of milliseconds late on a veth pair)."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tracker.settings")
application = get_asgi_application()
