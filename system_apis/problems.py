"""Vendor failures as problems: one mapping, registered once as an exception handler.

The public face of the system APIs' failures: the gateway registers `vendor_problem` for
`VendorError` (the root of every vendor client's error tree) without reaching into the
system APIs' `_internal`.

A vendor throttling us or down is *our upstream* failing, so it is a 503 with
`Retry-After` (the consumer's own 429 is reserved for limits on the consumer: the gateway's, and
its share of a vendor's budget, `system_apis.pacing`); a vendor
business refusal keeps its meaning (404, 409, 422).
"""

from __future__ import annotations

import math

from contracts.problems import FieldError, ProblemError
from system_apis._internal.http import TransientVendorError, VendorError, VendorRejected, VendorShareSpent

__all__ = ["VendorError", "vendor_problem"]


def vendor_problem(exc: VendorError) -> ProblemError:
    if isinstance(exc, VendorShareSpent):  # the consumer sent too much: its own 429, as the gateway's limits
        return ProblemError(429, "rate-limited", "Too many requests",
                            f"This client has used its share of the {exc.vendor} request budget, which all "
                            "consumers share; retry after the window frees room.", code="vendor_share_spent",
                            headers={"Retry-After": str(max(1, math.ceil(exc.retry_after or 1)))})
    if isinstance(exc, TransientVendorError):
        wait = max(1, math.ceil(exc.retry_after or 1))
        return ProblemError(503, "vendor-unavailable", "Vendor system unavailable",
                            f"{exc.vendor} did not answer successfully; retry later.",
                            code="vendor_unavailable", headers={"Retry-After": str(wait)})
    assert isinstance(exc, VendorRejected)
    detail = f"{exc.vendor} refused the request" + (f" ({exc.code})" if exc.code else "") + f": {exc}"
    if exc.status == 404:
        return ProblemError(404, "not-found", "Not found", detail, code=exc.code or "not_found")
    if exc.status == 409:
        return ProblemError(409, "conflict", "Conflict", detail, code=exc.code or "conflict")
    errors = [FieldError(pointer=exc.field, detail=f"{exc.vendor} has no such record")] if exc.field else None
    return ProblemError(422, "vendor-rejected", "Vendor rejected the request", detail, errors=errors,
                        code=exc.code or "vendor_rejected")
