"""The code the stock LiteLLM proxy loads by name from ``config/*.yaml`` (no Prisma,
no ``DATABASE_URL``; PostgreSQL through psycopg 3, see DESIGN.md decision 2).

- :mod:`proxy.auth`: ``general_settings.custom_auth: proxy.auth.custom_auth``
- :mod:`proxy.gateway`: ``litellm_settings.callbacks: ["proxy.gateway.callbacks"]``
  (budget pre-call hook, spend logging) and the process-wide state
- :mod:`proxy.budget`, :mod:`proxy.spend`: month-to-date budgets, the batched spend writer
- :mod:`proxy.tenants`, :mod:`proxy.reports`, :mod:`proxy.db`: the PostgreSQL side,
  shared with the ``pool`` CLI (these three never import litellm)
- :mod:`proxy.settings`, :mod:`proxy.errors`: knobs from the environment, the error tree

Nothing is re-exported here: importing a submodule must not drag litellm into the CLI.
"""

__all__: list[str] = []
