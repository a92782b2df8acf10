"""Fault campaigns against the real daemon, with figures for docs/reliability.md.

    .venv/bin/python -m bench.faults kill9-door --cycles 1000 --seed 11
    .venv/bin/python -m bench.faults kill9-pos --cycles 1000 --seed 12
    .venv/bin/python -m bench.faults corrupt-db
    .venv/bin/python -m bench.faults clock-jumps

Each prints one JSON summary and exits 1 on any violation; tests/faults/ runs a short form of
each, and tests that the checks find what they look for.
"""
