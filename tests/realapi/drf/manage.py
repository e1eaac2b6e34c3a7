#!/usr/bin/env python3
"""Django entry point of the tracker app (tests/realapi/drf): `manage.py migrate --run-syncdb`,
`manage.py runserver`, `manage.py spectacular --file openapi.yaml`."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tracker.settings")
from django.core.management import execute_from_command_line  # noqa: E402

execute_from_command_line(sys.argv)
