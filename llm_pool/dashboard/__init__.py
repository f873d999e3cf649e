"""``pool dashboard``: a read-only operator's console over the gateway's PostgreSQL
tables and its Redis state.

- :mod:`llm_pool.dashboard.filters`: the query-string filters, checked (400 otherwise);
- :mod:`llm_pool.dashboard.queries`: the SQL; :mod:`llm_pool.dashboard.live`: Redis (live
  tenant use, LiteLLM's cooldowns);
- :mod:`llm_pool.dashboard.figures`: each page's tables; :mod:`llm_pool.dashboard.tables`:
  a table drawn as HTML (sortable) or CSV; :mod:`llm_pool.dashboard.render`: the pages,
  charts drawn as inline SVG on the server (no JavaScript at all);
- :mod:`llm_pool.dashboard.auth`: server-side sessions and the login throttle;
- :mod:`llm_pool.dashboard.app`: the Starlette app: master key as ``Authorization:
  Bearer`` or through the login form; 401 otherwise.
"""

from llm_pool.dashboard.app import build_app, serve
from llm_pool.dashboard.figures import page_tables
from llm_pool.dashboard.filters import BadFilter, Filters

__all__ = ["BadFilter", "Filters", "build_app", "page_tables", "serve"]
