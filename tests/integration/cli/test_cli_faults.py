"""The command line as a new user meets it (issue 12, fault 9): one clear line and an exit code, no traceback.

Each test runs `python -m cli` as a subprocess, the way a person types `psconnect …`.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from policies.bindings import DEFAULT_FILE
from tests.ports import free_port
from tests.processes import PSCONNECT, spawn, stop, wait_until

pytestmark = pytest.mark.slow


def psconnect(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PSCONNECT, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, **(env or {})})


def lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]


def nothing_at() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.mark.parametrize("period", ["2026-1", "2026-13", "26-10"])
def test_billing_run_with_an_impossible_period_is_one_line_and_exit_2(period: str) -> None:
    done = psconnect("billing", "run", "--legal-entity", "US01", "--period", period, "--base-url", nothing_at())
    out = lines(done)
    assert done.returncode == 2, out
    assert len(out) == 1 and "--period" in out[0] and period in out[0] and "YYYY-MM" in out[0], out


def test_billing_reconcile_without_a_gateway_says_so_and_starts_nothing() -> None:
    url = nothing_at()
    done = psconnect("billing", "reconcile", "--period", "2026-10", "--legal-entity", "US01", "--base-url", url)
    out = lines(done)
    assert done.returncode == 1, out
    assert len(out) == 1 and f"nothing answers at {url}" in out[0], out
    assert "make run" in out[0] and "psconnect serve" in out[0], out
    assert not any("embedded" in line or "discrepancies" in line for line in out), out


def test_billing_run_without_a_gateway_says_so() -> None:
    url = nothing_at()
    done = psconnect("billing", "run", "--legal-entity", "US01", "--period", "2026-10", "--base-url", url)
    assert done.returncode == 1 and lines(done) == [lines(done)[0]] and "nothing answers at" in lines(done)[0]


def test_serve_on_a_busy_port_says_so_before_any_banner(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        done = psconnect("serve", "--host", "127.0.0.1", "--port", str(port),
                         env={"PSCONNECT_HOME": str(tmp_path)})
    out = lines(done)
    assert done.returncode == 1, out
    assert out == [f"psconnect serve: port {port} is in use on 127.0.0.1"], out


def _bad_bindings(tmp_path: Path, old: str, new: str) -> Path:
    (tmp_path / "policies").mkdir()
    text = DEFAULT_FILE.read_text()
    assert old in text
    (tmp_path / "policies" / "gateway.yaml").write_text(text.replace(old, new, 1))
    return tmp_path


GOLD = "limits: {per_second: 100, per_minute: 3000, per_day: 500000}"


@pytest.mark.parametrize(("new", "message"), [
    (GOLD + "\n    requests_per_minute: 100",
     "policies/gateway.yaml: plans.gold.requests_per_minute: unknown field"),
    (GOLD.replace("per_minute: 3000", "per_minute: lots"),
     "policies/gateway.yaml: plans.gold.limits.per_minute: Expected `int | null`, got `str`"),
])
@pytest.mark.parametrize("command", [["serve"], ["clients", "create", "--name", "x", "--scope", "system.crm:read"],
                                     ["contracts", "generate", "--check"]])
def test_a_bad_bindings_file_is_one_line_naming_file_plan_and_field(
        tmp_path: Path, command: list[str], new: str, message: str) -> None:
    home = _bad_bindings(tmp_path, GOLD, new)
    done = psconnect(*command, cwd=home, env={"PSCONNECT_HOME": str(home / "home"),
                                              "PSCONNECT_BINDINGS": "policies/gateway.yaml",
                                              "PSCONNECT_PORT": str(free_port())})
    out = lines(done)
    assert done.returncode == 2, out
    assert len(out) == 1 and out[0].endswith(message) and "$." not in out[0], out


def test_a_problem_from_the_gateway_is_one_line_with_its_detail(tmp_path: Path) -> None:
    port = free_port()
    proc = spawn([*PSCONNECT, "serve", "--port", str(port)], {"PSCONNECT_HOME": str(tmp_path)},
                 tmp_path / "gateway.log")
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200, "gateway start")
        wait_until(lambda: (tmp_path / "demo-client.json").exists(), "demo credentials")
        done = psconnect("billing", "run", "--legal-entity", "XX99", "--period", "2026-10",
                         "--base-url", f"http://127.0.0.1:{port}", env={"PSCONNECT_HOME": str(tmp_path)})
    finally:
        stop(proc)
    out = lines(done)
    assert done.returncode == 2, out
    assert len(out) == 1 and "422" in out[0] and "XX99" in out[0] and "unknown_legal_entity" in out[0], out
    assert "run succeeded" not in done.stdout


def test_a_role_apart_on_embedded_settings_names_what_to_set(tmp_path: Path) -> None:
    done = psconnect("serve", "--role", "worker", "--port", str(free_port()), env={"PSCONNECT_HOME": str(tmp_path)})
    out = lines(done)
    assert done.returncode == 2, out
    assert len(out) == 1 and out[0].startswith("psconnect serve: --role worker needs DATABASE_URL"), out
    assert "REDIS_URL" in out[0] and "PSCONNECT_GATEWAY_URL" in out[0] and "--role all" in out[0], out


@pytest.mark.parametrize(("env", "message"), [
    ({"PSCONNECT_ROLE": "gatewya"}, "psconnect serve: PSCONNECT_ROLE: 'gatewya' is not one of all, gateway, worker"),
    ({"PSCONNECT_ROLE": "worker", "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
      "REDIS_URL": "redis://127.0.0.1:6379/0", "PSCONNECT_GATEWAY_URL": "http://127.0.0.2:8000/api"},
     "psconnect serve: PSCONNECT_GATEWAY_URL: 'http://127.0.0.2:8000/api' is not a gateway's base URL"),
])
def test_a_bad_role_setting_is_one_line_and_exit_2(tmp_path: Path, env: dict[str, str], message: str) -> None:
    done = psconnect("serve", "--port", str(free_port()), env={"PSCONNECT_HOME": str(tmp_path), **env})
    out = lines(done)
    assert done.returncode == 2, out
    assert len(out) == 1 and out[0].startswith(message), out
