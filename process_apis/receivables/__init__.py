"""Receivables: invoice status and payments read back from each ERP."""
