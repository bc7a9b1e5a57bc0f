"""The operations console: exceptions and dashboards for finance and operations staff, in the browser."""
