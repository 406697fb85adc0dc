"""Kubernetes I/O: the only package that talks to the API server (besides kopf itself)."""
