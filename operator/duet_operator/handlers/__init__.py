"""kopf handlers, one module per kind, registered into an explicit registry (no globals)."""
