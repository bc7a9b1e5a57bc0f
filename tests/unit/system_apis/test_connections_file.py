"""The connections file: the shipped one reproduces the single-vendor setup plus the acquired entities' own
accounts; a bad file is one line naming the file, the entity or connection, and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from system_apis import registry
from system_apis.connections import ConnectionsError, load_connections, parse_connections
from system_apis.registry import resolve

GOOD = """
format: 1
connections:
  netsuite: {vendor: netsuite}
  salesforce: {vendor: salesforce}
  kantata: {vendor: kantata}
  workday: {vendor: workday}
  harvest: {vendor: harvest, pacing: false}
  ca-erp:
    vendor: netsuite
    base_url: https://1234567.suitetalk.api.netsuite.com
    tenant: "1234567"
    credentials: {token: {env: CA_ERP_TOKEN}}
    pacing: {requests: 10, seconds: 1}
entities:
  default: {crm: salesforce, psa: kantata, time: harvest, hr: workday, erp: netsuite}
  CA01: {erp: ca-erp}
"""


def parse(text: str, **env: str) -> object:
    return parse_connections(text.encode(), "conn.yaml", env=env)


def test_the_shipped_file_keeps_the_firm_on_its_vendors_and_the_acquired_entities_on_their_own_accounts() -> None:
    connections = load_connections(env={})
    assert {d: resolve(d, "US01", connections=connections).name for d in ("crm", "erp", "psa", "time", "hr")} == {
        "crm": "salesforce", "erp": "netsuite", "psa": "kantata", "time": "harvest", "hr": "workday"}
    assert connections.connection_for("erp", "US01").connection.name == "netsuite"
    assert connections.connection_for("erp", None).connection.name == "netsuite"
    assert connections.connection_for("erp", "CA01").connection.name == "ca01-erp"
    assert connections.connection_for("erp", "AU01").connection.name == "au01-erp"
    assert connections.connection_for("hr", "AU01").connection.name == "workday"  # AU01 names only its ERP
    assert [e.connection.name for e in connections.for_domain("erp")] == ["netsuite", "ca01-erp", "au01-erp"]
    assert connections.entities_of("netsuite", ("US01", "UK01", "DE01", "CA01", "AU01")) == ("US01", "UK01", "DE01")
    assert connections.entities_of("workday", ("US01", "CA01", "AU01")) == ("US01", "AU01")


def test_resolve_per_entity_and_connection_options(monkeypatch: pytest.MonkeyPatch) -> None:
    connections = parse_connections(GOOD.encode(), "conn.yaml", env={"CA_ERP_TOKEN": "s3cret"})
    ca = connections.connection_for("erp", "CA01").connection
    assert (ca.base_url, ca.tenant, ca.credentials["token"]) == (
        "https://1234567.suitetalk.api.netsuite.com", "1234567", "s3cret")
    assert "s3cret" not in repr(ca)  # never in a log line
    assert ca.budget(None) is not None and ca.budget(None).requests == 10  # type: ignore[union-attr]
    harvest = connections.connection_for("time", "CA01").connection
    assert harvest.budget(registry.VendorBudget(100, 15)) is None  # pacing: false
    assert connections.connection_for("erp", "US01").connection.budget(registry.VendorBudget(5, 1)) == \
        registry.VendorBudget(5, 1)  # the vendor's published budget by default


def test_a_secret_file_is_read_at_start_up(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    text = GOOD.replace("{env: CA_ERP_TOKEN}", f"{{file: {secret}}}")
    assert parse_connections(text.encode(), env={}).connection_for("erp", "CA01").connection.credentials == {
        "token": "from-file"}


@pytest.mark.parametrize(("change", "message"), [
    (("format: 1", "format: 2"), "conn.yaml: format: 2 is not supported"),
    (("CA01: {erp: ca-erp}", "CA01: {erp: sap}"), "conn.yaml: entities.CA01.erp: names the connection 'sap'"),
    (("CA01: {erp: ca-erp}", "CA01: {erp: workday}"),
     "conn.yaml: entities.CA01.erp: the connection 'workday' is a workday account, which does not serve the erp"),
    (("CA01: {erp: ca-erp}", "CA01: {erp: ca-erp, payroll: x}"), "conn.yaml: entities.CA01.payroll: unknown field"),
    (("CA01: {erp: ca-erp}", "ca01: {erp: ca-erp}"), "conn.yaml: entities.ca01: an entity is `default`"),
    (("  ca-erp:\n    vendor: netsuite", "  ca-erp:\n    vendor: oracle"),
     "conn.yaml: connections.ca-erp.vendor: 'oracle' is not an installed vendor"),
    (("tenant: \"1234567\"", "tenant: \"1234567\"\n    secret: hunter2"),
     "conn.yaml: connections.ca-erp.secret: unknown field"),
    (("base_url: https://", "base_url: ftp://"), "conn.yaml: connections.ca-erp.base_url: Expected `str` matching"),
    (("tenant: \"1234567\"", "tenant: \"1234567\"\n    identity_url: https://login.example/tenant/token"),
     "conn.yaml: connections.ca-erp.identity_url: Expected `str` matching"),
    (("{token: {env: CA_ERP_TOKEN}}", "{token: {env: CA_ERP_TOKEN, file: /x}}"),
     "conn.yaml: connections.ca-erp.credentials.token: name exactly one of `env` or `file`"),
    (("{token: {env: CA_ERP_TOKEN}}", "{token: {env: MISSING_TOKEN}}"),
     "conn.yaml: connections.ca-erp.credentials.token: the environment variable MISSING_TOKEN is not set"),
    (("{token: {env: CA_ERP_TOKEN}}", "{token: {file: /nonexistent/secret}}"),
     "conn.yaml: connections.ca-erp.credentials.token: cannot read the secret file /nonexistent/secret"),
    (("pacing: {requests: 10, seconds: 1}", "pacing: {requests: 0, seconds: 1}"),
     "conn.yaml: connections.ca-erp.pacing"),
    (("  default: {crm: salesforce, psa: kantata, time: harvest, hr: workday, erp: netsuite}",
      "  default: {crm: salesforce, psa: kantata, time: harvest, hr: workday}"),
     "conn.yaml: entities.default.erp: missing"),
    (("  CA01: {erp: ca-erp}", "  CA01: [erp]"), "conn.yaml: entities.CA01: Expected `object`, got `array`"),
])
def test_a_bad_file_names_the_file_the_entry_and_the_field(change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(ConnectionsError) as caught:
        parse(GOOD.replace(old, new), CA_ERP_TOKEN="x")
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value) and "x" not in str(caught.value).split(":")[0]


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConnectionsError, match=r"nothere\.yaml: cannot read the connections file"):
        load_connections(tmp_path / "nothere.yaml")


def test_serve_stops_on_a_bad_connections_file_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.main import main

    bad = tmp_path / "connections.yaml"
    bad.write_text(GOOD.replace("CA01: {erp: ca-erp}", "CA01: {erp: sap}"))
    monkeypatch.setenv("PSCONNECT_CONNECTIONS", str(bad))
    monkeypatch.setenv("PSCONNECT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CA_ERP_TOKEN", "x")
    assert main(["serve", "--port", "18999"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("psconnect serve: ") and "entities.CA01.erp: names the connection 'sap'" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1
