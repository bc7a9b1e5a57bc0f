"""Canonical domain contracts (crm, erp, psa): one Protocol and one router per domain.

A vendor package's `api.py` implements the Protocol; the router here is the same for
every vendor of the domain, so the published contract does not change with the vendor.
"""
