"""The HTTP edge in front of LiteLLM: the route guard, body checks, consumption caps,
credential refusal, Anthropic-shaped errors."""
