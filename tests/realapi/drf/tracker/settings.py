"""Settings of the tracker app: a throwaway SQLite file (TRACKER_DB, made by capture.sh in its output
directory), no authentication (the evaluation is about paths, not about logging in), JSON only."""
import os

SECRET_KEY = "mirador-evaluation-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "drf_spectacular",
    "tracker",
]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
# APPEND_SLASH would answer a slash-less URL with a 301 to the slashed one; keep it (Django's default) so
# clients that forget the slash produce the redirects real DRF services produce.
ROOT_URLCONF = "tracker.urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("TRACKER_DB", "/tmp/mirador-tracker.sqlite3"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {"TITLE": "Tracker (mirador evaluation)", "VERSION": "1.0.0"}
