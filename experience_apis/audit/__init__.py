"""The audit experience API: the finance audit trail, filtered and paged, within the caller's legal entities."""
