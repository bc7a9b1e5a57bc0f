"""Machinery shared by the process APIs: run and exception stores, system-API clients."""
