"""The catalog.v1 face of the server: handlers, the middleware in front of them, the one
error map from core errors to Connect codes, the web UI files and self-reflection."""
