"""``ykt hq``: a reference headquarters speaking PROTOCOL.md v1, for tests, demos and integrators.

A development tool, not part of the appliance: a separate program from the terminal with its own
SQLite database. It is deliberately small: one site, one process, no user management; a real HQ
is another team's system and only has to speak the same protocol.
"""
