"""The library service: Connexion (Flask) serving swagger.yaml, handlers in handlers.py.

    uvicorn --app-dir tests/realapi/connexion library:app --host HOST --port PORT
"""
import os

import connexion

app = connexion.FlaskApp(__name__, specification_dir=os.path.dirname(os.path.abspath(__file__)))
app.add_api("swagger.yaml")
