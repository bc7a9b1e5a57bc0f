"""The declarative bindings: which APIs exist, what they require, which policies run.

`policies/gateway.yaml` is decoded once at start-up into these Structs; a bad file
stops start-up with the file and the field named. Scopes follow the house rule
`<layer>.<api>:<read|write>`: safe methods need `read`, the rest `write`, unless an
operation names its own. The most specific setting wins (operation > API > global).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from policies.auth import AuthConfig

__all__ = [
    "ApiBinding",
    "Bindings",
    "BindingsError",
    "Deprecation",
    "OperationBinding",
    "load_bindings",
    "required_scopes",
]

DEFAULT_FILE = Path(__file__).with_name("gateway.yaml")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ScopeName = Annotated[str, Meta(pattern=r"^[a-z_]+\.[a-z_]+:(read|write|admin)$")]


class Deprecation(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A deprecated API version answers with Deprecation, Sunset and Link headers."""

    since: Annotated[dt.date, Meta(description="Date the version was deprecated.")]
    sunset: Annotated[dt.date, Meta(description="Date after which the version may be removed.")]
    successor: Annotated[str | None, Meta(description="URL of the successor version's docs.")] = None

    def __post_init__(self) -> None:
        if self.sunset < self.since:
            raise ValueError("sunset must not be before since")


class OperationBinding(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    scopes: Annotated[tuple[ScopeName, ...], Meta(description="Scopes the operation requires (all of them).")]


class ApiBinding(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One published API: its identity in the catalog and what calling it requires."""

    title: str
    layer: Literal["system", "process", "experience"]
    version: Annotated[str, Meta(pattern=r"^v\d+$")] = "v1"
    owner: Annotated[str, Meta(description="Team accountable for the API.")]
    lifecycle: Literal["beta", "stable", "deprecated"] = "stable"
    description: str = ""
    deprecation: Deprecation | None = None
    operations: dict[str, OperationBinding] = {}

    def __post_init__(self) -> None:
        if (self.lifecycle == "deprecated") != (self.deprecation is not None):
            raise ValueError("lifecycle 'deprecated' and a deprecation block go together")


class Bindings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    format_version: Annotated[Literal[1], Meta(description="Version of this file's format.")]
    auth: Annotated[AuthConfig, Meta(description="Authentication policy settings.")] = AuthConfig()
    apis: dict[Annotated[str, Meta(pattern=r"^[a-z_]+\.[a-z_]+$")], ApiBinding]


class BindingsError(Exception):
    """The bindings file is invalid; the message names the file and the field."""


def load_bindings(path: Path = DEFAULT_FILE) -> Bindings:
    try:
        return msgspec.yaml.decode(path.read_bytes(), type=Bindings)
    except FileNotFoundError as exc:
        raise BindingsError(f"{path}: file not found") from exc
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BindingsError(f"{path}: {exc}") from exc


def required_scopes(bindings: Bindings, api: str, operation_id: str, method: str) -> tuple[str, ...]:
    """Scopes a call needs: the operation's own, else read/write of its API by method."""
    binding = bindings.apis.get(api)
    if binding is None:
        raise BindingsError(f"route of API {api!r} has no binding in the bindings file")
    op = binding.operations.get(operation_id)
    if op is not None:
        return op.scopes
    return (f"{api}:{'read' if method.upper() in SAFE_METHODS else 'write'}",)
