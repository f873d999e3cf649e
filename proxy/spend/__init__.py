"""Spend rows: built from LiteLLM's logging payload, journaled in a Redis Stream or
buffered in process, written to PostgreSQL in batches."""
