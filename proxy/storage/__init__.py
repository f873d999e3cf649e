"""PostgreSQL and Redis: tenants and keys, spend reports, migrations, the shared Redis
client. Never imports LiteLLM (the ``pool`` CLI and the dashboard use it without it)."""
