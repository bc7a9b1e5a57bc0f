"""experience_apis."""
