"""SQL persistence: the store, the per-engine backends, the schema."""
