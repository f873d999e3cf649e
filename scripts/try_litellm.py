"""Try another LiteLLM release against the gateway, without touching ``.venv``.

    .venv/bin/python scripts/try_litellm.py 1.108.7 [--keep] [-- extra pytest args]

Creates a scratch virtualenv (``$TMPDIR/llm-pool-litellm-<version>``), installs
``litellm[proxy]==<version>`` there, then this checkout's other dependencies (read from
``pyproject.toml``, LiteLLM's pin left out) and the checkout itself without dependencies,
and runs the tests that touch LiteLLM (:data:`SUITES`: the signature and call-path tests
of ``proxy/plugin/internals.py`` first, then the proxy, client and fault suites) with
``pytest -q -rfE``, its output going to ``$TMPDIR/llm-pool-litellm-<version>.log`` as it
runs (the suites take tens of minutes). Prints what broke (the failing test ids) and exits
non-zero if anything did. PostgreSQL and Redis must be answering, as for the normal suite.

The procedure around it is in docs/upgrading-litellm.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the LiteLLM-touching tests, the fastest and most telling first
SUITES = (
    "tests/gateway/test_isolation_units.py",
    "tests/gateway/test_errors_units.py",
    "tests/gateway/test_units.py",
    "tests/test_configcheck.py",
    "tests/gateway",
    "tests/clients",
    "tests/faults",
    "tests/integration/test_proxy_offline.py",
    "tests/integration/test_production_config.py",
)
PIN = re.compile(r"^litellm(\[[^\]]*\])?\s*==")


def requirements() -> list[str]:
    """Every dependency of ``.[dev]`` except LiteLLM's pin and our own extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        found += [r for r in extra if not r.startswith("llm-pool")]
    return sorted({r for r in found if not PIN.match(r)})


def run(argv: list[str], **kwargs: object) -> None:
    print("+", " ".join(argv), flush=True)
    subprocess.run(argv, check=True, **kwargs)  # type: ignore[call-overload]


def install(version: str, venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run([*pip, f"litellm[proxy]=={version}"])
    run([*pip, *requirements(), f"litellm[proxy]=={version}"])
    run([*pip, "--no-deps", "-e", str(ROOT)])
    return python


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("version", help="the LiteLLM release to try, e.g. 1.108.7")
    parser.add_argument("--keep", action="store_true", help="keep the scratch virtualenv")
    parser.add_argument("pytest_args", nargs="*", help="after --: extra pytest arguments")
    args = parser.parse_args()
    venv = Path(tempfile.gettempdir()) / f"llm-pool-litellm-{args.version}"
    try:
        python = install(args.version, venv)
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        argv = [str(python), "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
                *args.pytest_args, *SUITES]
        log = venv.with_name(f"{venv.name}.log")  # beside the venv, kept: tail -f it
        print("+", " ".join(argv), f"> {log}", flush=True)
        with log.open("w") as out:
            done = subprocess.run(argv, cwd=ROOT, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, text=True)
        report = log.read_text()
        print(report[-4000:])
        broke = [line.split(" ", 1)[1] for line in report.splitlines()
                 if line.startswith(("FAILED ", "ERROR "))]
        print(f"\nlitellm {args.version}: "
              + ("nothing broke" if done.returncode == 0 and not broke
                 else f"stopped by signal {-done.returncode} before the end: see {log}"
                 if done.returncode < 0
                 else f"{len(broke)} broke (exit {done.returncode})"))
        for test in broke:
            print(f"  broke: {test}")
        return done.returncode
    finally:
        if not args.keep:
            shutil.rmtree(venv, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
