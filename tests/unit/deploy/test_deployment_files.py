"""The image and the compose layout, checked without docker (none runs here, nor in CI).

What a user would meet first is checked against the code itself: a service whose command `psconnect` would not
parse, whose settings `psconnect serve --role ...` would refuse, whose probe asks a path nobody serves, a worker
pointed at a port the load balancer does not listen on, a Dockerfile copying what the build context lacks or
leaving out a package the wheel needs, vendor stand-ins on other ports than the gateways are told. Building
and running the image stays untested.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
import shlex
import sqlite3
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
import yaml
from authlib.common.security import is_secure_transport
from litestar import Litestar

import cli.serve
from cli.main import build_parser, main
from cli.simulators import simulator_urls
from gateway.health import health_router
from gateway.settings import Settings
from gateway.vendors import _accounts  # the order `simulators --connections` serves, without seeding each one
from system_apis.connections import load_connections

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
NGINX = DEPLOY / "nginx.conf"
DOCKERFILE = ROOT / "Dockerfile"
SHARED = ("DATABASE_URL", "REDIS_URL", "PSCONNECT_REDIS_PREFIX", "PSCONNECT_PUBLIC_URL", "PSCONNECT_LIMITS_STORE",
          "PSCONNECT_AUDIENCE", "PSCONNECT_SCHEDULES_FILE", "PSCONNECT_BINDINGS")
"""Settings every process must agree on: else it misses the others' workflows, counters, tokens or schedules."""
INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")
PROBE = re.compile(r"http://127\.0\.0\.1:(\d+)(/[\w/.-]*)")


# --- reading the files ----------------------------------------------------------------------------------------
def interpolate(value: str) -> str:
    """Compose's `${VAR:-default}` as its default, a required `${VAR}` / `${VAR:?why}` as a stand-in."""
    def one(m: re.Match[str]) -> str:
        return m.group(3) if m.group(2) in ("-", ":-") else f"set-{m.group(1).lower()}"
    return INTERPOLATION.sub(one, value).replace("$$", "$")


def compose() -> dict[str, Any]:
    """The compose file as compose sees it: PyYAML's safe loader resolves the anchors and `<<` merge keys."""
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def serve_services() -> list[str]:
    """The services running `psconnect serve` (not the stand-ins, the one-shot table creation or nginx)."""
    return [name for name, s in services().items() if (s.get("command") or [None])[0] == "serve"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    assert isinstance(raw, dict), "environment as a mapping, so the anchors merge"
    return {key: interpolate(str(value)) for key, value in raw.items()}


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments and directives dropped."""
    joined: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):  # docker drops these inside a continuation too
            continue
        pending = pending[:-1] + " " + line.strip() if pending.endswith("\\") else line.strip()
        if not pending.endswith("\\"):
            if pending:
                joined.append(pending)
            pending = ""
    return [(s.split(None, 1)[0].upper(), s.split(None, 1)[1] if " " in s else "") for s in joined]


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for op, args in instructions():
        if op == "FROM":
            found.append([])
        assert found, f"{op} before the first FROM"
        found[-1].append((op, args))
    return found


def only(stage: list[tuple[str, str]], op: str) -> str:
    matching = [args for o, args in stage if o == op]
    assert len(matching) == 1, f"one {op} expected, found {matching}"
    return matching[0]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"exec form (JSON array): {args}"
    return value


def probe(snippet: str) -> tuple[int, str]:
    """The port and path a `python -c` probe asks; the snippet must at least be Python."""
    ast.parse(snippet)
    match = PROBE.search(snippet)
    assert match, f"no http://127.0.0.1:PORT/path in the probe {snippet!r}"
    return int(match.group(1)), match.group(2)


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# --- the serve services: what `psconnect serve` accepts --------------------------------------------------------
def test_the_layout_runs_gateways_and_workers_apart() -> None:
    roles = {option(services()[name]["command"], "--role") for name in serve_services()}
    assert roles == {"gateway", "worker"}


def _serve_as_compose_would(service: dict[str, Any], home: Path, monkeypatch: pytest.MonkeyPatch,
                            env_edit: Callable[[dict[str, str]], object] = lambda env: None,
                            ) -> tuple[int, Settings | None]:
    """`psconnect <command>` in the service's environment, up to the point where it would start serving."""
    for key in list(os.environ):
        if key.startswith(("PSCONNECT_", "OTEL_")) or key in ("DATABASE_URL", "REDIS_URL",
                                                              "AUTHLIB_INSECURE_TRANSPORT"):
            monkeypatch.delenv(key)
    env = {**environment(service), "PSCONNECT_HOME": str(home)}
    role = option(service["command"], "--role")
    env["PSCONNECT_ROLE"] = "gateway" if role == "worker" else "worker"  # the command's --role must win
    env_edit(env)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    accepted: list[Settings] = []

    def serve(settings: Settings, *, workers: int = 1) -> int:
        cli.serve.check_workers(settings, workers)
        cli.serve.check_role(settings)
        accepted.append(settings)
        return 0

    monkeypatch.setattr(cli.serve, "serve", serve)
    code = main(list(service["command"]))
    return code, accepted[0] if accepted else None


@pytest.mark.parametrize("name", serve_services())
def test_each_serve_service_starts_in_its_role_on_shared_state(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    service = services()[name]
    args = build_parser().parse_args(service["command"])
    assert args.command == "serve" and args.role in ("gateway", "worker")

    code, settings = _serve_as_compose_would(service, tmp_path, monkeypatch)

    assert code == 0 and settings is not None, capsys.readouterr().err
    assert settings.role == args.role
    assert settings.database_url.startswith("postgresql://") and not settings.embedded
    assert settings.host == "0.0.0.0" and settings.port == args.port  # reachable from the other containers
    assert not settings.seed_demo, "several gateways would each rotate the demo client's secret"
    # The issuer authlib accepts at start-up (https, or loopback for a local run).
    assert is_secure_transport(f"{settings.issuer}/oauth2/token"), settings.issuer


def test_a_worker_without_the_gateways_address_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The check above has teeth: the layout's worker, less PSCONNECT_GATEWAY_URL, does not start."""
    worker = next(services()[n] for n in serve_services() if option(services()[n]["command"], "--role") == "worker")
    code, _ = _serve_as_compose_would(worker, tmp_path, monkeypatch,
                                      lambda env: env.pop("PSCONNECT_GATEWAY_URL", None))
    assert code == 2
    assert "PSCONNECT_GATEWAY_URL" in capsys.readouterr().err


def test_every_process_shares_database_redis_issuer_and_prefix() -> None:
    envs = {name: environment(services()[name]) for name in serve_services()}
    for key in SHARED:
        values = {name: env.get(key) for name, env in envs.items()}
        assert len(set(values.values())) == 1, f"{key} differs between processes: {values}"


def test_no_secret_is_written_into_the_compose_file() -> None:
    for name, service in services().items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|TOKEN", key):
                assert INTERPOLATION.fullmatch(str(value)), f"{name}.{key} must come from the environment"
        url = (service.get("environment") or {}).get("DATABASE_URL")
        if url:
            assert INTERPOLATION.search(urlsplit(url).netloc), f"{name}: DATABASE_URL's password from the environment"


def test_every_dependency_can_be_met() -> None:
    """`service_healthy` waits on a healthcheck and `service_completed_successfully` on a one-shot: without them
    `up` waits forever or never starts the dependant."""
    found = services()
    for name in serve_services():
        needs = found[name]["depends_on"]
        for backing in ("postgres", "redis"):
            assert needs[backing]["condition"] == "service_healthy", f"{name} must wait for {backing}"
    for name, service in found.items():
        for needed, spec in (service.get("depends_on") or {}).items():
            assert needed in found, f"{name} depends on an unknown service {needed}"
            if spec["condition"] == "service_healthy":
                check = found[needed].get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), f"{needed} has no healthcheck"
            if spec["condition"] == "service_completed_successfully":
                assert found[needed].get("restart") == "no", f"{needed} must run once"


def test_the_one_shot_creates_the_tables_the_processes_need(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run its command as written, on SQLite: a misspelt command or a broken migration fails here, not at `up`."""
    migrate = services()["migrate"]
    assert "entrypoint" not in migrate
    for name in serve_services():
        assert services()[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("PSCONNECT_HOME", str(tmp_path))
    assert main(migrate["command"]) == 0
    with sqlite3.connect(tmp_path / "psconnect.sqlite") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"oauth_clients", "signing_keys", "workflow_executors"} <= tables


# --- probes --------------------------------------------------------------------------------------------------
async def _answers(path: str, *, launched: bool) -> int:
    """What the health router answers on `path` for a process whose workflows are (not) launched."""
    app = Litestar(route_handlers=[health_router(sa.create_engine("sqlite://"), None, "all", lambda: launched)])
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as http:
        return (await http.get(path)).status_code


@pytest.mark.parametrize("name", serve_services())
async def test_each_serve_service_probes_readiness_on_its_port(name: str) -> None:
    service = services()[name]
    test = service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    port, path = probe(test[3])
    assert (port, path) == (int(option(service["command"], "--port")), "/health/ready")
    assert await _answers(path, launched=True) == 200
    assert await _answers(path, launched=False) == 503  # urllib raises on it: the probe fails


async def test_the_image_probes_a_path_the_health_router_serves() -> None:
    runtime = stages()[-1]
    healthcheck = only(runtime, "HEALTHCHECK")
    command = exec_form(healthcheck[healthcheck.index("CMD") + 3:].strip())
    assert command[:2] == ["python", "-c"]
    port, path = probe(command[2])
    assert port == int(only(runtime, "EXPOSE"))
    assert path in ("/health/live", "/health/ready")
    assert await _answers(path, launched=True) == 200


# --- the image -----------------------------------------------------------------------------------------------
def test_the_image_runs_psconnect_serve_as_a_non_root_user() -> None:
    runtime = stages()[-1]
    user = only(runtime, "USER").split(":")[0]
    assert user not in ("root", "0"), "the runtime stage must not run as root"
    assert exec_form(only(runtime, "ENTRYPOINT")) == ["psconnect"]
    assert "psconnect" in pyproject()["project"]["scripts"]
    command = exec_form(only(runtime, "CMD"))
    args = build_parser().parse_args(command)
    assert args.command == "serve" and args.role == "all" and args.host == "0.0.0.0"
    assert args.port == int(only(runtime, "EXPOSE"))
    env = only(runtime, "ENV")
    home = re.search(r"PSCONNECT_HOME=(\S+)", env)
    assert home and "/app/.venv/bin" in env, env
    # The state directory is made for, and owned by, the user the process runs as.
    assert any(home.group(1) in run and user in run for op, run in runtime if op == "RUN")


def test_the_image_installs_the_locked_runtime_dependencies_with_the_makefiles_uv() -> None:
    build = stages()[0]
    syncs = [args for op, args in build if op == "RUN" and "uv sync" in args]
    assert syncs, "the build stage must install with `uv sync`"
    for args in syncs:
        assert "--frozen" in args and "--no-dev" in args, args
    uv_copy = next(args for op, args in build if op == "COPY" and "astral-sh/uv" in args)
    pinned = re.search(r"astral-sh/uv:([\w.]+)", uv_copy)
    makefile = re.search(r"^UV_VERSION\s*:?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert pinned and makefile and pinned.group(1) == makefile.group(1), (uv_copy, makefile)
    # The venv points at the build stage's interpreter: the runtime must be the same image.
    assert only(build, "FROM").split()[0] == only(stages()[-1], "FROM").split()[0]


def _ignored(relative: str) -> bool:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    parts = Path(relative).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(prefix, p.removeprefix("**/")) or fnmatch.fnmatch(prefix, p)
               for p in patterns for prefix in prefixes)


def test_everything_the_image_copies_is_in_the_build_context() -> None:
    sources: list[str] = []
    for op, args in instructions():
        words = shlex.split(args)
        if op in ("COPY", "ADD") and not any(w.startswith("--from") for w in words):
            sources += [w for w in words[:-1] if not w.startswith("--")]
        if op == "RUN":
            sources += re.findall(r"--mount=type=bind,source=([^,\s]+)", args)
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which the repository lacks"
        assert not _ignored(source), f"the Dockerfile copies {source}, which .dockerignore leaves out"
    packages = pyproject()["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    missing = set(packages) - {s.rstrip("/") for s in sources}
    assert not missing, f"the wheel's packages the image leaves out: {sorted(missing)}"
    assert pyproject()["project"]["readme"] in sources, "hatchling reads the readme to build the wheel"


# --- load balancer and vendor stand-ins ----------------------------------------------------------------------
def test_the_workers_reach_the_gateways_where_the_load_balancer_listens() -> None:
    conf = NGINX.read_text()
    listens = {int(p) for p in re.findall(r"^\s*listen\s+(\d+)\s*;", conf, re.M)}
    upstream = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", conf, re.M)
    found = services()
    gateways = [n for n in serve_services() if option(found[n]["command"], "--role") == "gateway"]
    assert {(host, int(port)) for host, port in upstream} == {(n, int(option(found[n]["command"], "--port")))
                                                             for n in gateways}
    lb = next(name for name, s in found.items() if str(s.get("image", "")).startswith("nginx"))
    mounts = [v.split(":") for v in found[lb]["volumes"]]
    assert [m[1] for m in mounts if (COMPOSE.parent / m[0]).resolve() == NGINX] == ["/etc/nginx/nginx.conf"]
    published = {int(p.split(":")[1]): int(p.split(":")[0]) for p in found[lb]["ports"]}
    assert listens and listens <= set(published)
    for name in serve_services():
        env = environment(found[name])
        if option(found[name]["command"], "--role") == "worker":
            for url in env["PSCONNECT_GATEWAY_URL"].split(","):
                parts = urlsplit(url.strip())
                assert (parts.hostname, parts.port) in {(lb, p) for p in listens}, url
        public = urlsplit(env["PSCONNECT_PUBLIC_URL"])
        assert public.port in published.values(), "the issuer is the load balancer's published URL"


def test_the_vendor_stand_ins_serve_where_the_gateways_look_for_them() -> None:
    found = services()
    name, vendors = next((n, s) for n, s in found.items() if (s.get("command") or [None])[0] == "simulators")
    args = build_parser().parse_args(vendors["command"])
    shipped = args.connections.split("/site-packages/", 1)
    assert len(shipped) == 2 and (ROOT / shipped[1]).is_file(), args.connections
    python = re.search(r"python:(\d+\.\d+)", only(stages()[-1], "FROM"))
    assert python and shipped[0].endswith(f"/python{python.group(1)}"), "the site-packages of the image's Python"
    connections = load_connections(ROOT / shipped[1])
    expected = simulator_urls(name, args.port_base, list(_accounts(connections)))
    for gateway in serve_services():
        if option(found[gateway]["command"], "--role") == "gateway":
            assert json.loads(environment(found[gateway])["PSCONNECT_VENDOR_URLS"]) == expected
    port, path = probe(vendors["healthcheck"]["test"][3])
    assert port in {urlsplit(u).port for u in expected.values()} and path == "/__sim__/faults"
