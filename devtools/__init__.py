"""Development tools of the terminal: run on a developer's or integrator's machine and in the
tests, never installed on a terminal (the appliance's import contracts forbid importing them)."""
