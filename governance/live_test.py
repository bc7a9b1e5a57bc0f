"""Contract tests against a live deployment: `psconnect contracts test --base-url URL`.

For each API the deployment lists at `/apis`, schemathesis (its CLI, so a governance team
can rerun one API by hand with the command printed) fetches the served document and runs
its phases: examples, coverage (positive and negative values at the edges of every schema),
fuzzing, and stateful sequences along the documents' OpenAPI links (upsert -> get,
startRun -> getRun). The client authenticates as a consumer does: client credentials at
the token endpoint for a bearer token holding every scope the catalog lists (the gateway's
own document is tested with the client's Basic credentials instead, as its token endpoint
expects). Access tokens live minutes; one is fetched per API, so a run of any length works.

Two answers to a schema-valid request are right although no schema can predict them, and a
schemathesis configuration written per API says so for exactly the operations concerned:
an operation whose document lists `x-refers-to` (fields that must name records existing in
another system: a legal entity, a customer, a rate card) answers a well-formed reference to
nothing with a 422 whose `errors[]` names the field; one that lists `x-requires-one-of` (query
parameters of which at least one must be given, a rule JSON Schema cannot state for
parameters) answers a request with none of them with a 422; and the token endpoint answers RFC 6749
errors (400) to a well-formed form whose client, secret or grant it refuses, including a
client that authenticates two ways at once (§2.3). Every other status rule stays as strict.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TextIO
from xml.etree import ElementTree as ET

import httpx
import msgspec

__all__ = ["DEFAULT_CHECKS", "ApiResult", "LiveTestError", "run_live_tests", "summary"]

DEFAULT_CHECKS: Final = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
                         "response_schema_conformance", "response_headers_conformance")
PHASES: Final = "examples,coverage,fuzzing,stateful"
GATEWAY_API: Final = "gateway"
TOKEN_PATH: Final = "/oauth2/token"
ACCEPTED: Final = ("2xx", "3xx", "401", "403", "404", "409", "429", "5xx")
"""schemathesis' own default for a schema-valid request, which every operation keeps unless its document says more."""


class LiveTestError(Exception):
    """The deployment could not be reached or refused the client's credentials."""


class ApiResult(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    exit_code: int
    tests: int
    failures: int
    errors: int
    junit: str

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and self.failures == 0 and self.errors == 0


def _schemathesis() -> str:
    beside = Path(sys.executable).parent / "schemathesis"
    found = str(beside) if beside.exists() else shutil.which("schemathesis")
    if found is None:
        raise LiveTestError("schemathesis is not installed in this environment")
    return found


def _token(client: httpx.Client, client_id: str, secret: str, scopes: list[str]) -> str:
    response = client.post("/oauth2/token", auth=(client_id, secret),
                           data={"grant_type": "client_credentials", "scope": " ".join(scopes)})
    if response.status_code != 200:
        raise LiveTestError(f"token endpoint answered {response.status_code}: {response.text[:300]}")
    return str(response.json()["access_token"])


def run_live_tests(base_url: str, client_id: str, client_secret: str, *, report_dir: Path,
                   max_examples: int = 10, apis: list[str] | None = None,
                   checks: tuple[str, ...] = DEFAULT_CHECKS, jobs: int = 1,
                   max_response_time: float | None = None, out: TextIO = sys.stdout) -> list[ApiResult]:
    """Run schemathesis against every listed API (or those in `apis`); write JUnit under `report_dir`.

    `jobs` APIs run at once (one schemathesis process each); each API's output is printed
    whole when it ends, and the results keep the catalog's order. `max_response_time` (seconds) is the slowest
    answer the `max_response_time` check accepts (schemathesis' own 10 s when `checks` is `all` and it is None).

    Raises:
        LiveTestError: the catalog or the token endpoint cannot be used.
    """
    base = base_url.rstrip("/")
    report_dir.mkdir(parents=True, exist_ok=True)
    with httpx.Client(base_url=base, timeout=30) as client:
        try:
            catalog = client.get("/apis").raise_for_status().json()
        except httpx.HTTPError as exc:
            raise LiveTestError(f"cannot read the API catalog at {base}/apis: {exc}") from exc
        chosen = [entry for entry in catalog if not apis or entry["name"] in apis
                  or f"{entry['name']}.{entry['version']}" in apis]
        for entry in chosen:
            key = f"{entry['name']}.{entry['version']}"
            document = client.get(entry["links"]["openapi"]).raise_for_status().json()
            (report_dir / f"{key}.schemathesis.toml").write_text(schemathesis_config(document))
    scopes = sorted({s for entry in catalog for s in entry.get("scopes", [])})
    printing = threading.Lock()

    def run_one(entry: dict[str, Any]) -> ApiResult:
        key = f"{entry['name']}.{entry['version']}"
        junit = report_dir / f"{key}.xml"
        cmd = [_schemathesis(), "--config-file", str(report_dir / f"{key}.schemathesis.toml"), "run",
               f"{base}{entry['links']['openapi']}", "--url", base,
               "--phases", PHASES, "--mode", "all", "--checks", ",".join(checks),
               "--max-examples", str(max_examples), "--generation-deterministic",
               "--suppress-health-check", "all", "--no-color",
               "--request-timeout", "20", "--report", "junit", "--report-junit-path", str(junit)]
        if max_response_time is not None:
            cmd += ["--max-response-time", str(max_response_time)]
        if entry["name"] == GATEWAY_API:
            auth = ["--auth", f"{client_id}:{client_secret}"]
        else:  # fetched right before its run: a token lives minutes, a whole run may take longer
            with httpx.Client(base_url=base, timeout=30) as own:
                auth = ["--header", f"Authorization: Bearer {_token(own, client_id, client_secret, scopes)}"]
        shown = " ".join([*cmd, *auth[:1], "<redacted>"])
        proc = subprocess.run(cmd + auth, capture_output=True, text=True, check=False, env=_hooks_env())
        with printing:
            print(f"== {key}: {shown}", file=out, flush=True)
            print(_tail(proc.stdout + proc.stderr), file=out, flush=True)
        tests, failures, errors = _counts(junit)
        return ApiResult(key=key, exit_code=proc.returncode, tests=tests, failures=failures, errors=errors,
                         junit=str(junit))

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(run_one, chosen))
    _merge([Path(r.junit) for r in results], report_dir / "contract-tests.xml")
    print(summary(results), file=out, flush=True)
    return results


def schemathesis_config(document: dict[str, Any]) -> str:
    """The per-operation status rules a document states beyond its schemas (see the module docstring)."""
    references: list[str] = []
    token: list[str] = []
    for path, item in sorted(document.get("paths", {}).items()):
        for operation in item.values():
            if not isinstance(operation, dict) or not isinstance(operation.get("operationId"), str):
                continue
            if operation.get("x-refers-to") or operation.get("x-requires-one-of"):
                references.append(operation["operationId"])
            elif path == TOKEN_PATH:
                token.append(operation["operationId"])
    blocks = []
    for ids, extra, why in ((references, "422", "a reference to nothing (x-refers-to), or none of x-requires-one-of"),
                            (token, "400", "RFC 6749 errors of the token endpoint")):
        if ids:
            statuses = ", ".join(f'"{s}"' for s in sorted((*ACCEPTED, extra)))
            blocks.append(f"# {why}\n[[operations]]\ninclude-operation-id = [{', '.join(json.dumps(i) for i in ids)}]\n"
                          f"checks.positive_data_acceptance.expected-statuses = [{statuses}]\n")
    return "\n".join(blocks)


def _hooks_env() -> dict[str, str]:
    """schemathesis loads governance/schemathesis_hooks.py (cursor and Idempotency-Key values) from this checkout."""
    root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "SCHEMATHESIS_HOOKS": "governance.schemathesis_hooks", "PYTHONPATH": path}


def _tail(text: str, lines: int = 40) -> str:
    kept = text.strip().splitlines()
    return "\n".join(kept[-lines:])


def _counts(junit: Path) -> tuple[int, int, int]:
    if not junit.is_file():
        return 0, 0, 1
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = [0, 0, 0]
    for suite in suites:
        for i, attr in enumerate(("tests", "failures", "errors")):
            total[i] += int(suite.get(attr, "0") or 0)
    return total[0], total[1], total[2]


def _merge(files: list[Path], target: Path) -> None:
    root = ET.Element("testsuites", name="psconnect contract tests")
    for file in files:
        if file.is_file():
            parsed = ET.parse(file).getroot()
            for suite in [parsed] if parsed.tag == "testsuite" else list(parsed.iter("testsuite")):
                suite.set("name", f"{file.stem}: {suite.get('name', '')}")
                root.append(suite)
    ET.indent(root)
    target.write_text('<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n")


def summary(results: list[ApiResult]) -> str:
    lines = ["", "contract tests:"]
    for r in results:
        verdict = "passed" if r.passed else "FAILED"
        lines.append(f"  {r.key:<28} {verdict:<7} {r.tests} operation(s), {r.failures} failure(s), "
                     f"{r.errors} error(s)  {r.junit}")
    failed = [r for r in results if not r.passed]
    lines.append(f"{len(results) - len(failed)} of {len(results)} API(s) conform" if results else "no API was tested")
    return "\n".join(lines)
