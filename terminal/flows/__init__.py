"""Flows: small state machines that call drivers, ``decide``, the store, and actuators in order."""
