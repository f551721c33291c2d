"""The HTTP front door: the original `POST /api/store/publish`, answered through the pipeline."""
