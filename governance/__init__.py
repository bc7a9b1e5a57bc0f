"""Governance toolchain for the published OpenAPI contracts: lint, breaking-change diff, changelog, live tests.

Governance teams run these from their own CI (`psconnect contracts lint|diff|changelog|test`, see
docs/governance.md); `make test` runs the same commands against `contracts/openapi/` and the released
baseline in `contracts/releases/`.
"""

__all__: list[str] = []
