"""The canonical tax regime of a company's country, for ERPs whose books name only the country.

Business Central and Xero keep no regime of psconnect's; both derive it from the company's country.
They differ only in what an unlisted country falls back to (`otherwise`): a sales-tax country for
Business Central (tax added per invoice by the customer's jurisdiction), an invoice tax like UK VAT
for Xero (its GST countries, such as New Zealand).
"""

from __future__ import annotations

from typing import Final

from contracts.erp import TaxRegime

__all__ = ["EU_COUNTRIES", "requires_customer_tax_id", "tax_regime"]

EU_COUNTRIES: Final = frozenset({"AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
                                 "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK"})
_BY_COUNTRY: Final[dict[str, TaxRegime]] = {"GB": "uk_vat", "US": "us_sales_tax", "CA": "ca_gst_hst", "AU": "au_gst"}


def tax_regime(country: str, *, otherwise: TaxRegime) -> TaxRegime:
    if country in EU_COUNTRIES:
        return "eu_vat"
    return _BY_COUNTRY.get(country, otherwise)


def requires_customer_tax_id(regime: TaxRegime) -> bool:
    """A VAT regime invoices a business customer only under its VAT number."""
    return regime in ("uk_vat", "eu_vat")
