"""From a request to what it asks of its tenant's limits (:class:`proxy.admission.limits.Ask`), and
back: the admitted requests of this process (:class:`TicketBook`), until their
spend row settles them.

A failed call that reached a provider (a timeout, a cut connection) reports no
usage: its row is charged at least the prompt's cost at the alias's input price,
flagged ``estimated``, and counts against the budget like any other. Each failed
attempt LiteLLM reports (one event per attempt, all with the request's id) keeps a
row: the request's final outcome under its id, earlier attempts under
``<id>/attempt-<n>``; a retry or fallback for which the router found no deployment (all
cooling down) called no provider and keeps no row of its own. A failed attempt that
streamed part of an answer before it was cut (or ended by the provider's error event) is
charged what LiteLLM counted of it, flagged ``estimated``: the provider's own count of it
never came.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from proxy.admission.estimate import alias_prices, completion_limit
from proxy.admission.limits import Ask, Ticket
from proxy.context import TenantContext
from proxy.edge.caps import estimate_prompt_tokens
from proxy.settings import DEFAULT_CAPS
from proxy.spend.rows import SpendRow

__all__ = ["ESTIMATED_ERRORS", "Settlement", "TicketBook", "ask_for", "costed", "count_tokens_ask",
           "output_cap"]

# LiteLLM error classes of a call the provider may have worked on (and billed), though
# no usage came back: the router's timeout, a connection cut mid-answer
ESTIMATED_ERRORS = frozenset({"Timeout", "APITimeoutError", "ReadError", "ReadTimeout",
                              "RemoteProtocolError", "APIConnectionError",
                              "MidStreamFallbackError"})


def output_cap(tenant: TenantContext) -> int:
    """The tenant's ``max_tokens`` cap (else the gateway's default)."""
    return tenant.caps.max_tokens or int(DEFAULT_CAPS.max_tokens or 0)


def ask_for(tenant: TenantContext, data: Mapping[str, Any], call_type: str) -> Ask:
    """What the request (as LiteLLM will send it: ``data`` after every merge) asks of its
    tenant's limits: a bound on its prompt, its completion limit, its alias's prices."""
    model = str(data.get("model") or "")
    input_price, output_price = alias_prices(model)
    return Ask(
        request_id=str(data.get("litellm_call_id") or ""),
        tenant_id=tenant.tenant_id,
        tenant=tenant.tenant,
        rpm=tenant.rpm,
        tpm=tenant.tpm,
        budget=tenant.budget_usd,
        prompt_tokens=estimate_prompt_tokens(data),
        completion_tokens=completion_limit(data, call_type, output_cap(tenant)),
        input_price=input_price,
        output_price=output_price,
    )


def count_tokens_ask(tenant: TenantContext, body: Mapping[str, Any]) -> Ask:
    """A token count: one request toward rpm, its prompt bound toward tpm, no cost."""
    return Ask(request_id="", tenant_id=tenant.tenant_id, tenant=tenant.tenant,
               rpm=tenant.rpm, tpm=tenant.tpm, budget=None,
               prompt_tokens=estimate_prompt_tokens(body), completion_tokens=0,
               input_price=0.0, output_price=0.0)


def _with_prompt(row: SpendRow, ask: Ask) -> SpendRow:
    """The prompt's bound, at the alias's input price, added to a row LiteLLM could not
    count the prompt of."""
    if row.prompt_tokens:
        return row
    return replace(row, prompt_tokens=ask.prompt_tokens,
                   cost_usd=row.cost_usd + ask.prompt_tokens * ask.input_price)


def costed(row: SpendRow, ask: Ask) -> SpendRow:
    """An error row of a call that timed out or was cut at the provider, with no cost
    reported: charged the prompt at least, flagged estimated. An error row with usage (a
    stream cut or ended by an error event mid-answer: what LiteLLM counted of what was
    streamed, the provider's own count never came) is flagged estimated, the prompt's
    bound added if LiteLLM had no prompt count. A stream answered without usage (flagged
    estimated, counted by LiteLLM's tokenizer) whose prompt LiteLLM could not count: the
    prompt's bound, at the alias's input price, is added."""
    if row.status == "ok":
        return _with_prompt(row, ask) if row.estimated else row
    if row.deployment is None:
        return row
    if row.prompt_tokens or row.completion_tokens or row.cost_usd > 0:
        return replace(_with_prompt(row, ask), estimated=True)
    if row.error_class not in ESTIMATED_ERRORS:
        return row
    prompt = max(row.prompt_tokens, ask.prompt_tokens)
    return replace(row, prompt_tokens=prompt, cost_usd=prompt * ask.input_price,
                   estimated=True)


@dataclass
class Settlement:
    """What one spend event settles: the reservation to release (None: released
    already, or unknown), the row (costed; a later failed attempt under its own id),
    and rows of earlier failed attempts to keep under their own ids (their cost is
    counted already), since this row takes the request's id."""

    release: Ticket | None
    row: SpendRow
    earlier: list[SpendRow] = field(default_factory=list)


@dataclass
class _Entry:
    created: float
    ticket: Ticket
    failures: list[SpendRow] = field(default_factory=list)
    errors: list[object] = field(default_factory=list)  # the failures' exceptions


def _attempt(row: SpendRow, number: int) -> SpendRow:
    return replace(row, request_id=f"{row.request_id}/attempt-{number}")


class TicketBook:
    """Request id -> its ticket, kept until the answer settles it (or ``ttl`` passes:
    then its reservation has expired in Redis too)."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def add(self, request_id: str, ticket: Ticket) -> None:
        now = time.monotonic()
        while self._entries:
            if next(iter(self._entries.values())).created > now - self._ttl:
                break
            self._entries.popitem(last=False)
        self._entries[request_id] = _Entry(now, ticket)

    def settle(self, row: SpendRow, error: object = None) -> Settlement | None:
        """``error``: the exception of a failed attempt; the same exception logged again
        (the gateway lets every attempt's failure through, :mod:`proxy.plugin.gateway`)
        settles nothing (None)."""
        entry = self._entries.get(row.request_id)
        if entry is None:
            return Settlement(None, row)
        if error is not None and row.status == "error":
            if any(seen is error for seen in entry.errors):
                return None
            entry.errors.append(error)
        if row.deployment is None and row.status == "error" and entry.failures:
            return None  # no deployment picked for a retry: the request's row stays its last call's
        ticket = entry.ticket
        row = costed(row, ticket.ask)
        release = None if ticket.settled else ticket
        ticket.settled = True
        if row.status == "ok":
            self._entries.pop(row.request_id, None)
            return Settlement(release, row, [_attempt(entry.failures[0], 1)]
                              if entry.failures else [])
        if row.deployment is None:
            return Settlement(release, row)
        entry.failures.append(row)
        number = len(entry.failures)
        return Settlement(release, row if number == 1 else _attempt(row, number))

    def request_over(self, request_id: str) -> None:
        """The request has failed for good: its attempts' exceptions, kept to spot one
        logged twice, are let go (they hold tracebacks; its entry may stay until ``ttl``)."""
        entry = self._entries.get(request_id)
        if entry is not None:
            entry.errors.clear()

    def __len__(self) -> int:
        return len(self._entries)
