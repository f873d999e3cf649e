"""Where a gateway request's CPU goes: ``py-spy`` samples the proxy process while ``wrk``
loads it (tenant key, config/offline.yaml, Redis on), and the stacks are summed per
function of ours and per package.

    apt-get install -y wrk && .venv/bin/pip install py-spy
    .venv/bin/python -m bench.profile_gateway [--seconds 20] [--connections 10] [--out DIR]
    .venv/bin/python -m bench.profile_gateway --stock [...]        # the stock proxy instead
    .venv/bin/python -m bench.profile_gateway --compare DIR/stock.txt DIR/gateway.txt

Writes ``DIR/gateway.svg`` (a flame graph, open it in a browser) and ``DIR/gateway.txt``
(collapsed stacks; ``stock.*`` with ``--stock``), and prints the share of samples
(inclusive) of each package and of the busiest functions of ``proxy/``. Shares are
comparable across runs on a loaded machine; absolute rates are not (``bench.costs``).
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from bench.common import MASTER_KEY, proxy, scratch_database
from bench.gateway_overhead import stock_config
from bench.wrk_gateway import BODY, OFFLINE, tenant_key, upstream
from llm_pool.settings import DEFAULT_REDIS_URL

PACKAGES = ("(proxy/", "litellm/proxy/", "litellm/integrations/prometheus", "litellm/router",
            "litellm/litellm_core_utils", "litellm/llms/", "litellm/", "starlette/",
            "fastapi/", "uvicorn/", "pydantic", "httpx", "aiohttp", "redis/", "psycopg",
            "asyncio/", "json/", "logging/")
OURS = " (proxy/"  # py-spy names files relative to their sys.path entry
PY_SPY = str(Path(sys.executable).with_name("py-spy"))  # .venv/bin/py-spy (pip install py-spy)


def _package(frame: str) -> str:
    return next((p for p in PACKAGES if p in frame), "other")


def summarize(collapsed: Path, top: int = 25) -> str:
    """Self time per package and per function (the leaf frame of each sample), and the
    inclusive share of each function of ``proxy/`` (an ASGI layer's share includes the
    app it wraps: read those as "the request", not as their own cost)."""
    total = 0
    own: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit() or not stack:
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        own[_package(frames[-1])] += count
        leaf[frames[-1]] += count
        for frame in {f for f in frames if OURS in f}:
            ours[frame] += count
    def table(title: str, counts: collections.Counter[str], n: int) -> list[str]:
        return ["", f"| {title} | share |", "|---|---|",
                *(f"| {k} | {v / total:.1%} |" for k, v in counts.most_common(n))]
    return "\n".join([f"{total} samples",
                      *table("package (self)", own, len(PACKAGES) + 1),
                      *table("function (self)", leaf, top),
                      *table("function of proxy/ (inclusive)", ours, top)])


def _inclusive(collapsed: Path) -> collections.Counter[str]:
    """Samples under each function (file and name, the line dropped), once per sample."""
    found: collections.Counter[str] = collections.Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if count_text.isdigit() and stack:
            found.update(dict.fromkeys({f.rpartition(":")[0] for f in stack.split(";")},
                                       int(count_text)))
    return found


ROUTER = "Router._acompletion (litellm/router.py"  # the same work per request on both sides


def compare(stock: Path, gateway: Path, top: int = 40) -> str:
    """Per-request CPU of each function, gateway minus stock, in units of the router's own
    per-request work (LiteLLM's ``Router._acompletion``, identical on both sides): a
    profile counts samples, not requests, and this puts both on the same footing."""
    s, g = _inclusive(stock), _inclusive(gateway)
    unit_s, unit_g = s[ROUTER], g[ROUTER]
    rows = sorted(((g[f] / unit_g - s[f] / unit_s, f) for f in set(s) | set(g)), reverse=True)
    lines = ["| function | stock | gateway | extra |", "|---|---|---|---|"]
    last = (-1.0, -1.0)
    for d, f in rows:
        pair = (s[f] / unit_s, g[f] / unit_g)
        if d < 0.03 or len(lines) >= top + 2:
            break
        if abs(pair[0] - last[0]) + abs(pair[1] - last[1]) > 0.03:  # not a wrapper's twin
            lines.append(f"| {f}) | {pair[0]:.2f} | {pair[1]:.2f} | {d:+.2f} |")
        last = pair
    return "\n".join(lines)


def record(pid: int, seconds: float, out: Path, fmt: str) -> None:
    subprocess.run([PY_SPY, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                    "--rate", "250", "--format", fmt, "--output", str(out), "--nonblocking"],
                   check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--out", type=Path, default=Path("bench/profiles"))
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("STOCK", "GATEWAY"),
                        help="print the per-request difference of two collapsed profiles")
    parser.add_argument("--stock", action="store_true",
                        help="profile the stock proxy (master key, no plug-ins) instead")
    args = parser.parse_args()
    if args.compare:
        print(compare(*args.compare))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    namespace = f"llmpool-bench-{uuid.uuid4().hex[:8]}"
    with upstream() as up, scratch_database() as db_url, tempfile.TemporaryDirectory() as tmp:
        key = tenant_key(db_url)
        env = {"POOL_PROVIDER_URL": f"{up}/v1", "LITELLM_MASTER_KEY": MASTER_KEY,
               "POOL_DATABASE_URL": db_url, "POOL_REDIS_URL": args.redis_url,
               "POOL_NAMESPACE": namespace}
        config = stock_config(Path(tmp)) if args.stock else OFFLINE
        key = MASTER_KEY if args.stock else key
        name = "stock" if args.stock else "gateway"
        with proxy(config, env) as p, tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
            lua.write("wrk.method = 'POST'\n"
                      f"wrk.body = [[{json.dumps(BODY)}]]\n"
                      "wrk.headers['Content-Type'] = 'application/json'\n"
                      f"wrk.headers['Authorization'] = 'Bearer {key}'\n")
            lua.flush()
            url = p.url + "/v1/chat/completions"
            subprocess.run(["wrk", "-t1", f"-c{args.connections}", "-d5s", "-s", lua.name, url],
                           check=True, capture_output=True)  # warm-up: lazy imports, pools
            load = subprocess.Popen(["wrk", "-t1", f"-c{args.connections}",
                                     f"-d{int(args.seconds * 2 + 10)}s", "-s", lua.name, url],
                                    stdout=subprocess.PIPE, text=True)
            try:
                pid = p.proc.pid
                record(pid, args.seconds, args.out / f"{name}.txt", "raw")
                record(pid, args.seconds, args.out / f"{name}.svg", "flamegraph")
            finally:
                load.terminate()
                load.wait()
    print(summarize(args.out / f"{name}.txt"))
    print(f"\nflame graph: {args.out / f'{name}.svg'}")


if __name__ == "__main__":
    main()
