"""The general ledger in the simulated Business Central: G/L accounts, general journals and their posting.

- ``accounts`` (read-only): the chart of accounts, seeded with the few G/L accounts the demo books use.
- ``journals`` are batches of the GENERAL journal template; their ``journalLines`` stay in the batch until
  ``journals({id})/Microsoft.NAV.post`` posts every line of it in one transaction and empties it. A line that
  cannot post refuses the whole batch (nothing posted, the batch as it was) with an error naming the line
  (``Gen. Journal Line: Journal Template Name=GENERAL, Journal Batch Name=…, Line No.=…``), as Business Central
  does. The API reads only lines of ``accountType`` ``G/L Account`` or ``Bank Account`` with no document type,
  so those are the only ones taken here.
- Posting writes two ``generalLedgerEntries`` (read-only) per line: the line's account and the batch's balancing
  account, debit and credit by the sign of ``amount`` (a negative line credits its account: the credit form of
  the same entry). Entries keep the line's ``documentNumber`` and ``description``.
- String fields longer than the table's field are refused (400), as Business Central refuses them.

Docs: https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/resources/dynamics_journal
https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/resources/dynamics_journalline
https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/api/dynamics_journal_post
https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/resources/dynamics_generalledgerentry
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from system_apis.businesscentral.simulator._store import BcError, EntityStore, new_id

__all__ = ["LEDGER_ACCOUNTS", "add_journal_line", "post_general_journal", "seed_ledger"]

Record = dict[str, Any]
LEDGER_ACCOUNTS: Final = (("10100", "Checking account", "Assets"),
                          ("20700", "Employee reimbursements payable", "Liabilities"),
                          ("40100", "Services revenue", "Income"),
                          ("40900", "Intercompany revenue", "Income"),
                          ("50900", "Intercompany cost of services", "CostOfGoodsSold"),
                          ("60100", "Project expenses", "Expense"),
                          ("60900", "Other expenses (blocked)", "Expense"))
"""(number, name, category) of the seeded chart of accounts; 60900 is blocked, to refuse a posting with."""
_LINE_FIELDS: Final = {"accountType": None, "accountId": None, "accountNumber": 20, "postingDate": None,
                       "documentNumber": 20, "externalDocumentNumber": 35, "amount": None, "description": 100,
                       "comment": 250, "taxCode": 20, "lineNumber": None}
"""Writable journalLine fields (API v2.0) and the length of the table field behind each string."""
_READABLE_TYPES: Final = frozenset({"G/L Account", "Bank Account"})


def seed_ledger(store: EntityStore, company_id: str) -> None:
    """The chart of accounts and the GENERAL template's ``DEFAULT`` batch (no balancing account: users balance
    each document themselves there)."""
    for number, name, category in LEDGER_ACCOUNTS:
        store.insert(company_id, "accounts", {"number": number, "displayName": name, "category": category,
                                              "subCategory": "", "blocked": number == "60900",
                                              "accountType": "Posting", "directPosting": True}, seeding=True)
    store.insert(company_id, "journals", {"code": "DEFAULT", "displayName": "Default Journal Batch",
                                          "templateDisplayName": "GENERAL", "balancingAccountNumber": ""},
                 seeding=True)


def _where(journal: Record, line: Record) -> str:
    """How Business Central names a general journal line in its errors."""
    return (f"Gen. Journal Line: Journal Template Name=GENERAL, Journal Batch Name={journal['code']}, "
            f"Line No.={line['lineNumber']}")


def add_journal_line(store: EntityStore, company_id: str, journal_id: str, body: Record) -> Record:
    """A ``journalLines`` line in a general journal batch; checked for shape here, for posting at post."""
    journal = store.find(company_id, "journals", journal_id)
    lines = store.document_lines(company_id, "journals", journal_id)
    unknown = sorted(k for k in body if not k.startswith("@") and k not in _LINE_FIELDS)
    if unknown:
        raise BcError(400, "BadRequest_PropertyNotFound", f"The property '{unknown[0]}' does not exist on type "
                      "'Microsoft.NAV.journalLine'.")
    for field, limit in _LINE_FIELDS.items():
        value = body.get(field)
        if limit is not None and isinstance(value, str) and len(value) > limit:
            raise BcError(400, "BadRequest", f"The length of the string is {len(value)}, but it must be less than "
                          f"or equal to {limit} characters. Value: {value}")
    line = {k: v for k, v in body.items() if not k.startswith("@")}
    account_type = str(line.get("accountType") or "G/L Account")
    if account_type not in _READABLE_TYPES:
        raise BcError(400, "BadRequest", f"The accountType '{account_type}' is not supported by this API; use "
                      "'G/L Account' or 'Bank Account'.")
    line.update(id=new_id(), journalId=journal["id"], journalDisplayName=journal["code"], accountType=account_type,
                lineNumber=10000 * (1 + max((int(x["lineNumber"]) // 10000 for x in lines.values()), default=0)),
                amount=Decimal(str(line.get("amount") or 0)), postingDate=str(line.get("postingDate") or "")[:10],
                accountId=str(line.get("accountId") or "00000000-0000-0000-0000-000000000000"))
    for field in ("accountNumber", "documentNumber", "externalDocumentNumber", "description", "comment", "taxCode"):
        line.setdefault(field, "")
    lines[line["id"]] = store.stamp(line)
    store.stamp(journal)
    return line


def _account(store: EntityStore, company_id: str, number: str, where: str) -> Record:
    accounts = [a for a in store.entity_set(company_id, "accounts").values() if a["number"] == number]
    if not accounts:
        raise BcError(400, "Application_DialogException", f"The G/L Account does not exist. Identification fields "
                      f"and values: No.='{number}' ({where}).")
    if accounts[0].get("blocked"):
        raise BcError(400, "Application_DialogException", f"Blocked must be equal to 'No' in G/L Account: "
                      f"No.={number}. Current value is 'Yes'. ({where})")
    return accounts[0]


def post_general_journal(store: EntityStore, company_id: str, journal_id: str) -> None:
    """Post every line of the batch, or none: each line is checked before any entry is written."""
    journal = store.find(company_id, "journals", journal_id)
    lines = sorted(store.document_lines(company_id, "journals", journal_id).values(),
                   key=lambda x: int(x["lineNumber"]))
    if not lines:
        raise BcError(400, "Application_DialogException", "There is nothing to post.")
    pairs: list[tuple[Record, Record, Record]] = []
    for line in lines:
        where = _where(journal, line)
        if not line.get("documentNumber"):
            raise BcError(400, "Application_DialogException", f"Document No. must have a value in {where}.")
        if Decimal(str(line["amount"])) == 0:
            raise BcError(400, "Application_DialogException", f"Amount must have a value in {where}.")
        try:
            store.require_open(company_id, line["postingDate"])
        except BcError as exc:
            raise BcError(exc.status, exc.code, f"{exc.message} {where}.") from None
        if not journal.get("balancingAccountNumber"):
            raise BcError(400, "Application_DialogException", f"Document No. {line['documentNumber']} is out of "
                          f"balance by {line['amount']}. Please check that the posting date, document type, "
                          "document number and amount are correct for each line.")
        pairs.append((line, _account(store, company_id, str(line.get("accountNumber") or ""), where),
                      _account(store, company_id, str(journal["balancingAccountNumber"]), where)))
    entries = store.entity_set(company_id, "generalLedgerEntries")
    number = max((int(e["entryNumber"]) for e in entries.values()), default=0)
    for line, account, balancing in pairs:
        amount = Decimal(str(line["amount"]))
        for target, signed in ((account, amount), (balancing, -amount)):
            number += 1
            store.insert(company_id, "generalLedgerEntries", {
                "entryNumber": number, "postingDate": line["postingDate"], "documentNumber": line["documentNumber"],
                "documentType": "", "accountId": target["id"], "accountNumber": target["number"],
                "description": line.get("description", ""), "debitAmount": max(signed, Decimal(0)),
                "creditAmount": max(-signed, Decimal(0)), "additionalCurrencyDebitAmount": Decimal(0),
                "additionalCurrencyCreditAmount": Decimal(0)}, seeding=True)
    store.document_lines(company_id, "journals", journal_id).clear()
    store.stamp(journal)
