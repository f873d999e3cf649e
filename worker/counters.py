"""The worker's own Prometheus counters, as the service sees its work.

:class:`Counters` is handed to the service (and each turn) and counts nothing until
:meth:`Counters.enable` is called; ``pool worker --metrics-port`` does that in each
worker process (:mod:`worker.metrics`). Each thing is counted once, where it
happens, not from replies (a reply re-sent after a crash or asked for again is not
a second turn):

- ``pool_worker_turns_total{agent, outcome}``: conversation turns (a user message
  and everything the agent did for it) that ended, by outcome: ``completed``,
  ``declined`` (every gated call declined), ``max_iterations``, ``failed`` (provider
  outage, unknown agent), ``budget_exceeded``, ``expired`` (its confirmation was not
  decided in time), ``error`` (the gateway refused the worker: dead-lettered). A turn
  that waits for a confirmation ends later, once.
- ``pool_worker_tool_calls_total{agent, tool, outcome}``: tool calls the model asked
  for, by outcome: ``ok``, ``error`` (the tool raised, or was called with invalid
  arguments), ``declined`` (a human said no: never run). A result reused after a
  redelivery is not counted again.
- ``pool_worker_expire_runs_total{result}``: runs of the ``expire`` actor (one per
  confirmation, at its TTL): ``expired`` (it ended an undecided confirmation),
  ``decided`` (every call was decided in time: nothing to do), ``gone`` (the
  confirmation had ended already, e.g. by a late answer, or a newer message's
  replaced it), ``early`` (delivered before the TTL: nothing done).

Label values are bounded: ``agent`` and ``tool`` are names from the agents file
(anything else, such as a tool name the model made up, is counted as
:data:`UNKNOWN`); outcomes and results are the fixed sets above.
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = ["UNKNOWN", "Counters", "EndStatus", "ExpireResult", "ToolOutcome", "TurnOutcome"]

UNKNOWN = "(unknown)"  # the label of an agent or tool the agents file does not define

EndStatus = Literal["completed", "declined", "max_iterations", "failed", "budget_exceeded",
                    "expired"]  # the statuses of a turn's final reply
TurnOutcome = EndStatus | Literal["error"]
ToolOutcome = Literal["ok", "error", "declined"]
ExpireResult = Literal["expired", "decided", "gone", "early"]


class Counters:
    """The counters above; no-ops until :meth:`enable`."""

    def __init__(self) -> None:
        self.turns: Any = None
        self.tool_calls: Any = None
        self.expire_runs: Any = None

    def enable(self, registry: Any) -> None:
        """Create the counters (``prometheus_client`` imported by the caller, after
        ``PROMETHEUS_MULTIPROC_DIR`` is set)."""
        import prometheus_client as prom

        self.turns = prom.Counter("pool_worker_turns", "Conversation turns ended, by outcome",
                                  ["agent", "outcome"], registry=registry)
        self.tool_calls = prom.Counter("pool_worker_tool_calls", "Tool calls, by outcome",
                                       ["agent", "tool", "outcome"], registry=registry)
        self.expire_runs = prom.Counter("pool_worker_expire_runs",
                                        "Runs of the expire actor, by what they found",
                                        ["result"], registry=registry)

    def turn(self, agent: str, outcome: TurnOutcome) -> None:
        if self.turns is not None:
            self.turns.labels(agent, outcome).inc()

    def tool_call(self, agent: str, tool: str, outcome: ToolOutcome) -> None:
        if self.tool_calls is not None:
            self.tool_calls.labels(agent, tool, outcome).inc()

    def expire_run(self, result: ExpireResult) -> None:
        if self.expire_runs is not None:
            self.expire_runs.labels(result).inc()
