"""Shared machinery of the vendor packages."""
