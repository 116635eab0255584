"""The REST API and WebSocket stream (FastAPI). Build it with `qenex.api.app.create_app`."""
