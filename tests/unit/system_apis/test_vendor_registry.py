"""The vendor registry: entry-point discovery, resolve per domain and legal entity, the lazy simulator path."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from system_apis import registry
from system_apis.registry import VendorConfigurationError, VendorPackage, resolve

INSTALLED = ("salesforce", "netsuite", "kantata", "workday", "harvest", "businesscentral", "certinia", "xero",
             "hubspot", "bamboohr")
FIRM = {"crm": "salesforce", "erp": "netsuite", "psa": "kantata", "hr": "workday", "time": "harvest"}


def installed(name: str) -> VendorPackage:
    return next(p for p in registry.installed() if p.name == name)


def test_the_ten_vendors_are_found_through_entry_points_in_port_order() -> None:
    assert tuple(p.name for p in registry.installed()) == INSTALLED
    assert registry.domains() == ("crm", "erp", "psa", "time", "hr")  # Kantata (3rd) serves time too
    # Every domain has two vendors or more: without the connections file, PSCONNECT_VENDORS chooses.
    assert {d: resolve(d, None, choice=FIRM).name for d in registry.domains()} == FIRM


def test_a_second_vendor_of_a_domain_needs_a_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    netsuite = installed("netsuite")
    other = dataclasses.replace(netsuite, name="other-erp", order=200)
    monkeypatch.setattr(registry, "_registered", {p.name: p for p in (*registry.installed(), other)})
    with pytest.raises(VendorConfigurationError, match="several installed vendors"):
        resolve("erp", "US01")
    assert resolve("erp", None, choice={"erp": "other-erp"}) is other
    with pytest.raises(VendorConfigurationError, match="PSCONNECT_VENDORS names 'sap'"):
        resolve("erp", None, choice={"erp": "sap"})
    with pytest.raises(VendorConfigurationError, match="no installed vendor"):
        resolve("payroll", None)


def test_declarations_name_their_simulator_by_path_and_importing_a_vendor_does_not_load_it() -> None:
    for package in registry._discover().values():  # as declared (tests may register replacements)
        assert isinstance(package, VendorPackage)
        simulator = type(registry.load_simulator(package)).__name__
        assert package.simulator == f"system_apis.{package.name}.simulator:{simulator}"
    code = ("import sys, gateway.vendors, system_apis.registry as r; [p.name for p in r.installed()]; "
            "print([m for m in sys.modules if m.endswith('.simulator') or '.simulator.' in m])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_vendor_offers_create_systems_so_it_can_be_routed_per_legal_entity() -> None:
    import httpx

    from system_apis.registry import Connection

    for package in registry.installed():
        assert package.create_systems is not None, package.name
        connection = Connection(name="x", vendor=package.name, base_url=package.base_url,
                                credentials={"token": package.default_token})
        if package.simulated_connection is not None:  # what its simulator needs that a bare entry leaves out
            connection = package.simulated_connection(connection, ("US01",))
        systems = package.create_systems(httpx.AsyncClient(), connection)
        assert set(systems) == set(package.domains)


def test_with_a_connections_file_resolve_is_per_legal_entity(monkeypatch: pytest.MonkeyPatch) -> None:
    from system_apis.connections import parse_connections

    netsuite = installed("netsuite")
    other = dataclasses.replace(netsuite, name="other-erp", order=200)
    monkeypatch.setattr(registry, "_registered", {p.name: p for p in (*registry.installed(), other)})
    connections = parse_connections(b"""
format: 1
connections:
  s: {vendor: salesforce}
  n: {vendor: netsuite}
  o: {vendor: other-erp}
  k: {vendor: kantata}
  w: {vendor: workday}
  h: {vendor: harvest}
entities:
  default: {crm: s, erp: n, psa: k, hr: w, time: h}
  CA01: {erp: o}
""", env={})
    # Two installed ERP vendors need no PSCONNECT_VENDORS choice: the file names one per entity.
    assert resolve("erp", "US01", connections=connections) is netsuite
    assert resolve("erp", None, connections=connections) is netsuite
    assert resolve("erp", "CA01", connections=connections) is other
    assert resolve("crm", "CA01", connections=connections).name == "salesforce"
