"""`psconnect serve` started as a stranger starts it (`make run`), in another process, for tests that need a
real listener: the live contract tests, the demo."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from tests.ports import free_port
from tests.processes import NO_SCHEDULES

__all__ = ["PSCONNECT", "REPO", "served"]

REPO = Path(__file__).resolve().parents[1]
# `python -c` puts the working directory first on sys.path: the command runs this checkout's code.
PSCONNECT = [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())"]


@contextlib.contextmanager
def served(home: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """The base URL of a started embedded instance whose home is `home` (its demo client is written there);
    `env`: settings of this instance (PSCONNECT_… variables)."""
    port = free_port()
    proc = subprocess.Popen([*PSCONNECT, "serve", "--port", str(port)],
                            env={**os.environ, **NO_SCHEDULES, **(env or {}), "PSCONNECT_HOME": str(home)}, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/.well-known/jwks.json", timeout=2).status_code == 200 and (
                        home / "demo-client.json").exists():
                    break
            time.sleep(0.3)
        else:
            raise TimeoutError("psconnect serve did not come up within 120 s")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
