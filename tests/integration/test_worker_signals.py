"""Stopping `pool worker`: SIGTERM to the process group (systemd's default) or to the
main process stops it within 10 s, a message in flight; a worker process killed with
-9 makes `pool worker` exit non-zero at once (so a supervisor restarts it); SIGUSR1 to
a worker process logs what its threads and runs wait on, and it goes on working."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.integration.worker_harness import (
    WorkerCluster,
    WorkerProcess,
    effects,
    new_conversation,
    result,
    script,
    tool_call,
    wait_until,
)

pytestmark = pytest.mark.integration

STOP_WITHIN = 10.0  # seconds


def _group(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _busy(cluster: WorkerCluster, pg_url: str) -> WorkerProcess:
    """A `pool worker` with a message in flight (its tool takes 60 s)."""
    worker = cluster.start_pool_worker()
    conv = new_conversation()
    cluster.send("work " + script(tool_call("effect_then_wait", label=conv, seconds=60),
                                  {"text": "done"}), conv)
    wait_until(lambda: effects(pg_url, conv) == 1, "the tool to start")
    return worker


@pytest.mark.parametrize("to_group", [True, False], ids=["process-group", "main-pid"])
def test_sigterm_stops_pool_worker_within_10_s(cluster: WorkerCluster, pg_url: str,
                                              to_group: bool) -> None:
    worker = _busy(cluster, pg_url)
    pgid = worker.proc.pid  # started in a session of its own
    assert len(_group(pgid)) >= 2  # Dramatiq's main process and a worker process
    sent = time.monotonic()
    if to_group:
        os.killpg(pgid, signal.SIGTERM)
    else:
        os.kill(worker.proc.pid, signal.SIGTERM)
    while _group(pgid) and time.monotonic() - sent < STOP_WITHIN + 20:
        time.sleep(0.1)
    took = time.monotonic() - sent
    assert not _group(pgid), worker.text()[-3000:]
    assert took < STOP_WITHIN, f"stopped after {took:.1f} s"


def test_a_killed_worker_process_makes_pool_worker_exit_non_zero(
        cluster: WorkerCluster, pg_url: str) -> None:
    worker = _busy(cluster, pg_url)
    children = [pid for pid in _group(worker.proc.pid) if pid != worker.proc.pid]
    assert children
    killed = time.monotonic()
    os.kill(children[0], signal.SIGKILL)
    code = worker.proc.wait(STOP_WITHIN + 20)
    assert code != 0
    assert time.monotonic() - killed < STOP_WITHIN, worker.text()[-3000:]
    assert not _group(worker.proc.pid)


def test_sigusr1_logs_what_a_run_waits_on_and_the_worker_goes_on(
        cluster: WorkerCluster, pg_url: str) -> None:
    worker = _busy(cluster, pg_url)
    dumped = worker.dump_stacks()
    assert "--- end of stack dump" in dumped, worker.text()[-3000:]
    # the tool's thread, in the tool; the run's task, awaiting it inside the run's lease
    assert "in effect_then_wait" in dumped, dumped
    task = dumped[dumped.index("asyncio task(s)"):]
    assert "in _handle" in task and "in handle_message" in task, task
    conv = new_conversation()
    reply = result(cluster.send("still there? " + script({"text": "yes"}), conv))
    assert (reply["status"], reply["text"]) == ("completed", "yes")
