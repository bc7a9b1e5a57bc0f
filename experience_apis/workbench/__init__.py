"""The exception workbench: list, filter, assign, comment, resolve and replay — every action audited."""
