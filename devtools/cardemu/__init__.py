"""Card and PSAM emulators that plug into pcscd through vsmartcard's vpcd driver.

They let the real PC/SC stack (pyscard -> pcscd -> vpcd) run without hardware: the test suite's
integration tests and the demo use them. ``python -m devtools.cardemu --help`` runs one.
"""
