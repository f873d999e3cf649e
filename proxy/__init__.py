"""The code the stock LiteLLM proxy loads by name from ``config/*.yaml``.

No Prisma and no ``DATABASE_URL``: LiteLLM's Prisma-backed keys, teams and spend logs
are replaced by the gateway's own tables (``proxy/migrations``), reached through
psycopg 3 at ``POOL_DATABASE_URL``, so the proxy needs no Prisma client or its
generated schema.

- :mod:`proxy.auth`: ``general_settings.custom_auth: proxy.auth.custom_auth``
- :mod:`proxy.gateway`: ``litellm_settings.callbacks: ["proxy.gateway.callbacks"]``
  (budget pre-call hook, spend logging) and the process-wide state (``ProxyState``)
- :mod:`proxy.budget`, :mod:`proxy.spend`: month-to-date budgets, the batched spend writer
- :mod:`proxy.tenants`, :mod:`proxy.reports`, :mod:`proxy.db`: the PostgreSQL side,
  shared with the ``pool`` CLI (these three never import litellm)
- :mod:`proxy.settings`, :mod:`proxy.errors`: knobs from the environment, the error tree
- :mod:`proxy.internals`: every LiteLLM internal the gateway reaches into

Nothing is re-exported here: importing a submodule must not drag litellm into the CLI.
"""

__all__: list[str] = []
