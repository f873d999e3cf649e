"""The code the stock LiteLLM proxy loads by name from ``config/*.yaml``, grouped by
what it depends on (imports point down this list, never up):

- :mod:`proxy.plugin`: what LiteLLM loads (``custom_auth: proxy.plugin.auth.custom_auth``,
  ``callbacks: ["proxy.plugin.gateway.callbacks"]``), the process-wide state, metrics,
  health, and every LiteLLM internal the gateway reaches into (:mod:`proxy.plugin.internals`)
- :mod:`proxy.edge`: the HTTP edge (route guard, body checks, caps, Anthropic errors)
- :mod:`proxy.admission`: rpm/tpm limits, budget reservations and estimates
- :mod:`proxy.spend`: spend rows, the Redis journal and the batched PostgreSQL writer
- :mod:`proxy.storage`: PostgreSQL (tenants, keys, reports, migrations) and the Redis
  client; shared with the ``pool`` CLI and never importing LiteLLM
- :mod:`proxy.settings`, :mod:`proxy.errors`: knobs from the environment, the error tree

No Prisma and no ``DATABASE_URL``: LiteLLM's Prisma-backed keys, teams and spend logs
are replaced by the gateway's own tables (``proxy/storage/migrations``), reached through
psycopg 3 at ``POOL_DATABASE_URL``.

Nothing is re-exported here: importing a submodule must not drag litellm into the CLI.
"""

__all__: list[str] = []
