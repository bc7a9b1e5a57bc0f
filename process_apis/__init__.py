"""process_apis."""
