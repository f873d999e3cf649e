"""Whether a tenant's request may go: rpm/tpm windows and budget reservations (Redis Lua,
or per process), month-to-date budgets, the cost estimate, the key cache in Redis."""
