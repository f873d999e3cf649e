"""scripts/setup.sh says what is wrong before doing anything: a too-old Python."""

from __future__ import annotations

import subprocess
from pathlib import Path


def test_setup_refuses_python_older_than_3_11(repo_root: Path, tmp_path: Path) -> None:
    fake = tmp_path / "python3.10"
    fake.write_text('#!/bin/sh\n[ "$1" = "-V" ] && { echo "Python 3.10.12"; exit 0; }\n'
                    'exec python3 -c "import sys; sys.exit(1)"\n')
    fake.chmod(0o755)
    done = subprocess.run(["bash", str(repo_root / "scripts" / "setup.sh")], capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "PYTHON": str(fake)},
                          timeout=60)
    assert done.returncode == 1
    assert "Python 3.10.12 is too old: llm-pool needs Python >= 3.11" in done.stderr
    assert "virtualenv" not in done.stdout  # stopped before touching anything
