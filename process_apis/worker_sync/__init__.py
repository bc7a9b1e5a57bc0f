"""Worker sync process API: HR is authoritative for workers; changes flow to the PSA and the ERP."""
