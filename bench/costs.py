"""Gateway / stock throughput with ``wrk``, sides alternating round by round in one run,
and what each gateway feature costs (the same bench with that feature switched off).

    .venv/bin/python -m bench.costs --gateway-only     # the done-when table (~5 min)
    .venv/bin/python -m bench.costs                    # + one side per switched-off feature
    .venv/bin/python -m bench.costs --gateway-only --baseline-rev REV  # + the gateway at REV

Sides: ``stock`` (config/offline.yaml's aliases, master key, no plug-ins of ours, no
callbacks), ``gateway`` (config/offline.yaml as is, a tenant key with budget, rpm and tpm,
Redis on, metrics on) and, unless ``--gateway-only``, one gateway per feature of
:data:`bench.switches.SWITCHES` with that feature off (bench-only: a variant config that
loads :mod:`bench.switches`). For each worker count, every side's proxy is started, then
for each concurrency ``--rounds`` rounds run, each loading one side at a time with
``wrk`` (1 s warm-up, ``--seconds`` measured), in an order that is reversed every round.
``--baseline-rev`` adds the gateway of an earlier commit (``git archive`` into a temporary
directory, first on the proxy's ``PYTHONPATH``): a before/after in the same rounds.
Each cell is the side's requests/s summed over the rounds divided by stock's: on a
shared machine absolute figures move by +-20 % between rounds, ratios measured this way
much less.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import redis
import yaml

from bench.common import MASTER_KEY, REPO, scratch_database
from bench.gateway_overhead import stock_config
from bench.switches import CONFIG_SWITCHES, SWITCHES
from bench.wrk_gateway import BODY, OFFLINE, tenant_key, upstream
from llm_pool.runtime import (
    PROXY_START_TIMEOUT,
    ProxyProcess,
    free_port,
    metrics_env,
    proxy_args,
    proxy_env,
    wait_http,
)
from llm_pool.settings import DEFAULT_REDIS_URL

CHAT = "/v1/chat/completions"
START_TIMEOUT = 3 * PROXY_START_TIMEOUT  # several proxies start on a shared, busy machine
OURS = "proxy.plugin.gateway.callbacks"
PROMETHEUS = "proxy.plugin.metrics.prometheus"  # LiteLLM's Prometheus integration, trimmed


def variant_config(directory: Path, off: str) -> Path:
    """config/offline.yaml with ``off`` switched off (see :mod:`bench.switches`)."""
    config = yaml.safe_load(OFFLINE.read_text())
    settings = config["litellm_settings"]
    callbacks = [c for c in settings["callbacks"] if c != OURS]
    if off == "prometheus":
        callbacks = [c for c in callbacks if c != PROMETHEUS]
    if off == "message_logging":
        settings["turn_off_message_logging"] = False
    settings["callbacks"] = ["bench.switches.callbacks", *callbacks]
    if off == "custom_auth":
        config["general_settings"]["custom_auth"] = "bench.switches.fixed_auth"
    path = directory / f"off-{off}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _script(directory: Path, key: str) -> Path:
    path = directory / f"wrk-{key[-6:]}.lua"
    path.write_text("wrk.method = 'POST'\n"
                    f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
                    "wrk.headers['Content-Type'] = 'application/json'\n"
                    f"wrk.headers['Authorization'] = 'Bearer {key}'\n")
    return path


def rate(url: str, script: Path, seconds: float, connections: int) -> tuple[float, int]:
    """requests/s and non-2xx answers of one wrk round (after a 1 s warm-up)."""
    subprocess.run(["wrk", "-t1", f"-c{connections}", "-d1s", "--timeout", "10s", "-s",
                    str(script), url], capture_output=True, check=True)
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--timeout",
                          "10s", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return (float(found.group(1)) if found else 0.0), (int(bad.group(1)) if bad else 0)


@contextlib.contextmanager
def proxy_at(tree: Path | None, config: Path, env: dict[str, str], workers: int
             ) -> Iterator[str]:
    """A proxy on ``config``; with ``tree``, running that tree's ``proxy`` package."""
    port = free_port()
    full = proxy_env(env)
    full["PYTHONPATH"] = str(tree or REPO)
    logs = Path(tempfile.mkdtemp(prefix="llm-pool-bench-"))
    full.update(metrics_env(full, port, logs / f"metrics-{port}"))
    with (logs / f"proxy-{port}.log").open("wb") as log:
        proc = subprocess.Popen(proxy_args(config, "127.0.0.1", port, workers), env=full,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    running = ProxyProcess(proc=proc, url=f"http://127.0.0.1:{port}", log_path=Path(log.name))
    try:
        wait_http(f"{running.url}/health/liveliness", START_TIMEOUT, proc)
        yield running.url
    finally:
        running.stop()
        shutil.rmtree(logs, ignore_errors=True)


def archive(rev: str, directory: Path) -> Path:
    tree = directory / f"tree-{rev}"
    tree.mkdir()
    git = subprocess.run(["git", "archive", rev], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=git.stdout, check=True)
    return tree


@contextlib.contextmanager
def sides(configs: dict[str, tuple[Path, dict[str, str]]], scripts: dict[str, Path],
          workers: int, trees: dict[str, Path]) -> Iterator[dict[str, str]]:
    """Every side's proxy running (started one after the other, then warmed up for 4 s:
    lazy imports, connection pools, caches): side -> base URL."""
    with contextlib.ExitStack() as stack:
        urls: dict[str, str] = {}
        for name, (config, env) in configs.items():
            started = time.monotonic()
            urls[name] = stack.enter_context(proxy_at(trees.get(name), config, env, workers))
            print(f"  started {name} ({workers} worker(s), {time.monotonic() - started:.0f} s)",
                  flush=True)
        for name, url in urls.items():
            rate(url + CHAT, scripts[name], 3, 10)
        yield urls


def measure(urls: dict[str, str], scripts: dict[str, Path], seconds: float, rounds: int,
            connections: int) -> dict[str, float]:
    """Side -> its requests/s summed over ``rounds`` alternating rounds / stock's."""
    total = dict.fromkeys(urls, 0.0)
    order = list(urls)
    for number in range(rounds):
        for name in order if number % 2 == 0 else reversed(order):
            rps, errors = rate(urls[name] + CHAT, scripts[name], seconds, connections)
            total[name] += rps
            print(f"  c={connections} round {number + 1} {name}: {rps:.1f} req/s"
                  + (f" ({errors} non-2xx!)" if errors else ""), flush=True)
    return {name: value / total["stock"] for name, value in total.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--connections", default="1,10")
    parser.add_argument("--gateway-only", action="store_true",
                        help="stock and the full gateway only (the done-when table)")
    parser.add_argument("--off", default=",".join(SWITCHES),
                        help="comma-separated features to switch off, one side each")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--baseline-rev", help="also the gateway at this git revision")
    args = parser.parse_args()
    features = [] if args.gateway_only else [f for f in args.off.split(",") if f]
    unknown = set(features) - set(SWITCHES)
    assert not unknown, f"unknown features {sorted(unknown)}; known: {sorted(SWITCHES)}"
    workers = [int(w) for w in args.workers.split(",")]
    concurrency = [int(c) for c in args.connections.split(",")]
    namespace = f"llmpool-bench-{uuid.uuid4().hex[:8]}"
    results: dict[tuple[int, int], dict[str, float]] = {}
    begun = time.monotonic()
    with upstream() as up, scratch_database() as db_url, tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        key = tenant_key(db_url)
        env = {"POOL_PROVIDER_URL": f"{up}/v1", "LITELLM_MASTER_KEY": MASTER_KEY,
               "POOL_DATABASE_URL": db_url, "POOL_REDIS_URL": args.redis_url,
               "POOL_NAMESPACE": namespace}
        configs = {"stock": (stock_config(directory), env), "gateway": (OFFLINE, env)}
        trees: dict[str, Path] = {}
        if args.baseline_rev:
            name = f"gateway@{args.baseline_rev}"
            trees[name] = archive(args.baseline_rev, directory)
            configs[name] = (trees[name] / "config" / "offline.yaml", env)
        for feature in features:
            config = variant_config(directory, feature)
            off = "" if feature in CONFIG_SWITCHES else feature
            configs[f"off:{feature}"] = (config, {**env, "POOL_BENCH_OFF": off})
        tenant, master = _script(directory, key), _script(directory, MASTER_KEY)
        scripts = {name: master if name == "stock" else tenant for name in configs}
        for count in workers:
            with sides(configs, scripts, count, trees) as urls:
                for c in concurrency:
                    results[count, c] = measure(urls, scripts, args.seconds, args.rounds, c)
                    print(f"  {count} worker(s), c={c}: " + ", ".join(
                        f"{name} {ratio:.3f}x" for name, ratio in results[count, c].items()),
                          flush=True)
    client = redis.Redis.from_url(args.redis_url)
    leftovers = list(client.scan_iter(f"{namespace}:*"))
    if leftovers:
        client.delete(*leftovers)
    columns = [(w, c) for w in workers for c in concurrency]
    print(f"\n{args.rounds} rounds x {args.seconds:.0f} s per side and cell, sides alternating; "
          f"ratio of requests/s to stock's in the same rounds ({time.monotonic() - begun:.0f} s)\n")
    print("| side | " + " | ".join(f"{w} worker{'s' * (w > 1)}, c={c}" for w, c in columns)
          + " |")
    print("|---|" + "---|" * len(columns))
    for name in configs:
        if name == "stock":
            continue
        label = name if not name.startswith("off:") else f"gateway, {name[4:]} off"
        print(f"| {label} | " + " | ".join(f"{results[col][name]:.3f}x" for col in columns)
              + " |")
    if features:
        print("\nwhat each feature costs (ratio with it off minus the full gateway's):\n")
        print("| feature | " + " | ".join(f"{w}w c={c}" for w, c in columns) + " | what |")
        print("|---|" + "---|" * len(columns) + "---|")
        for feature in features:
            cells = [results[col][f"off:{feature}"] - results[col]["gateway"] for col in columns]
            print(f"| {feature} | " + " | ".join(f"{cell:+.3f}" for cell in cells)
                  + f" | {SWITCHES[feature]} |")
    else:
        goal = all(results[col]["gateway"] >= 0.95 for col in columns)
        for name in trees:
            print(f"after / before ({name}): " + ", ".join(
                f"{w}w c={c} {results[w, c]['gateway'] / results[w, c][name]:.3f}x"
                for w, c in columns))
        print(f"\ngoal gateway/stock >= 0.95x in every cell: {'met' if goal else 'NOT met'}")


if __name__ == "__main__":
    main()
