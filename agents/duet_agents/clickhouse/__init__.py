"""ClickHouse cluster housekeeping that the operator drives: keeping a new host's schema in
step with its healthy peers (schema.py decides, ddl.py rewrites statements, sync.py talks to
the servers)."""
