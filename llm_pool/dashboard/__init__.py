"""``pool dashboard``: a read-only spend dashboard over the gateway's PostgreSQL tables.

- :mod:`llm_pool.dashboard.figures`: the figures (the same queries as ``pool spend``);
- :mod:`llm_pool.dashboard.render`: the HTML page, charts drawn as inline SVG on the
  server (no JavaScript at all);
- :mod:`llm_pool.dashboard.app`: the Starlette app: master key as ``Authorization:
  Bearer`` or through a login form that sets a signed session cookie; 401 otherwise.
"""

from llm_pool.dashboard.app import build_app, serve
from llm_pool.dashboard.figures import Filters, figures

__all__ = ["Filters", "build_app", "figures", "serve"]
