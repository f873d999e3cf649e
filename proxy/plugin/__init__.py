"""What the stock proxy loads by name from the YAML (``custom_auth``, ``callbacks``),
the process-wide state, the metrics and health routes, and every LiteLLM internal the
gateway reaches into (:mod:`proxy.plugin.internals`)."""
