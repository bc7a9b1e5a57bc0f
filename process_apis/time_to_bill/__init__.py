"""Time-to-bill: approved time -> validated ledger lines -> posted ERP time -> invoice drafts, exactly once."""
