"""Dashboards benchmark: billing-facts refresh time and widget latency at month-end volume."""
