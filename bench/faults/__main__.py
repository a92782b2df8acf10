"""`python -m bench.faults SCENARIO ...`: see the package's docstring and docs/reliability.md."""

import argparse
import importlib
import json
import sys

from bench.faults import corrupt, kill9

# Scenarios with options of their own: each module's `cli(argv) -> int` parses the rest.
OWN_OPTIONS: dict[str, str] = {
    "broker-backlog": "bench.faults.backlog",
    "clock-jumps": "bench.faults.clockjump",
    "disk-full": "bench.faults.diskfull",
    "mqtt-fuzz": "bench.faults.mqttfuzz",
    "serial-garbage": "bench.faults.serialfuzz",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in OWN_OPTIONS:
        scenario: int = importlib.import_module(OWN_OPTIONS[argv[0]]).cli(argv[1:])
        return scenario
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__)
    parser.add_argument(
        "scenario",
        choices=["kill9-door", "kill9-pos", "corrupt-db", *OWN_OPTIONS],
        help="which campaign (the last ones: SCENARIO --help)",
    )
    parser.add_argument("--cycles", type=int, default=100, help="kill -9 cycles")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--records", type=int, default=600, help="corrupt-db: journal size")
    parser.add_argument(
        "--max-minutes", type=float, default=None, help="kill -9: stop early after this long"
    )
    args = parser.parse_args(argv)
    if args.cycles < 1:
        parser.error("--cycles must be at least 1")
    if args.scenario == "corrupt-db":
        results = [corrupt.corrupt_db(how, args.records) for how in corrupt.DAMAGE]
        print(json.dumps(results, ensure_ascii=False, indent=2))
        return 1 if any(r["violations"] for r in results) else 0
    seconds = None if args.max_minutes is None else args.max_minutes * 60
    kind = args.scenario.removeprefix("kill9-")
    result = kill9.summary(kill9.run(kind, args.cycles, args.seed, max_seconds=seconds))
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 1 if result["violations"] or result["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
