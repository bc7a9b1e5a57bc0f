"""What every layer stands on and no layer owns: the table registry and engines, UTC time,
opaque cursors, and the retry policy with `Retry-After` parsing.

It imports only `contracts` (for the problem an unreadable cursor answers with), so
system, process and experience APIs, policies and the gateway can all use it without
importing upward or into each other's `_internal`.
"""
