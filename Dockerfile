# syntax=docker/dockerfile:1
# psconnect's image: one image for every role (`serve --role all|gateway|worker`), the vendor stand-ins
# (`simulators`) and the operator's commands (`clients create`, `accounts bootstrap`, `keys rotate`).
# docs/deployment.md describes the layout; deploy/compose.yaml runs it.

# --- build: the locked dependencies and the project, installed into /app/.venv ---------------------------------
FROM python:3.11-slim AS build
# The uv the Makefile installs (UV_VERSION), so the image resolves the lock exactly as `make` does.
COPY --from=ghcr.io/astral-sh/uv:0.13.8 /uv /uvx /bin/
# Bytecode compiled at build time: the runtime's venv is read-only to its user, so nothing could cache it later.
# No Python download: the venv must point at this image's interpreter, the same path in the runtime stage.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=0 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies alone first: this layer is rebuilt when the lock changes, not on every change to the code.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-dev --no-install-project --no-editable
# The wheel's packages ([tool.hatch.build.targets.wheel]); each carries its own data files (the bindings file
# policies/gateway.yaml, system_apis/connections.yaml, gateway/schedules.yaml, contracts/openapi and
# contracts/releases, the portal's and console's templates and static files), found next to its module.
COPY pyproject.toml uv.lock README.md ./
COPY contracts ./contracts
COPY foundation ./foundation
COPY system_apis ./system_apis
COPY process_apis ./process_apis
COPY experience_apis ./experience_apis
COPY policies ./policies
COPY web ./web
COPY gateway ./gateway
COPY cli ./cli
COPY governance ./governance
# Not editable: the project is built as a wheel into the venv, so the runtime needs the venv and nothing else.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

# --- runtime: the venv, a non-root user and a state directory -------------------------------------------------
FROM python:3.11-slim
RUN groupadd --system --gid 10001 psconnect \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/psconnect --no-create-home \
       --shell /usr/sbin/nologin psconnect \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/psconnect
# Owned by root: the running process can read its code but not change it.
COPY --from=build /app/.venv /app/.venv
ENV PATH="/app/.venv/bin:$PATH" \
    PSCONNECT_HOME=/var/lib/psconnect \
    PYTHONUNBUFFERED=1
# The state directory is also the working directory: the only place the process may write.
WORKDIR /var/lib/psconnect
USER 10001:10001
EXPOSE 8000
# Readiness, not liveness: the container is healthy once the database, Redis (when set) and DBOS answer.
# Slim images carry no curl; urllib raises (exit 1) on a refused connection, a timeout or a 503.
HEALTHCHECK --interval=10s --timeout=5s --start-period=40s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=4)"]
ENTRYPOINT ["psconnect"]
CMD ["serve", "--role", "all", "--host", "0.0.0.0", "--port", "8000"]
