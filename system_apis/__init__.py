"""system_apis."""
