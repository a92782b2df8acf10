"""Hardware and heavy I/O behind small interfaces, each with a real and a ``Sim`` implementation."""
