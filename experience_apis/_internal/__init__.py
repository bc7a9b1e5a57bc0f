"""Machinery shared by the experience APIs."""
