"""Field diagnostics: the daemon's diag socket (``server``), the commands it answers
(``commands``, ``live``, ``facts``), and ``ykt diag`` (``cli``, ``client``, ``render``,
``bundle``). Operations guide: docs/operations.md.
"""
