"""Prequential evaluation of every contender on MovieLens, through the real pipeline.

    .venv/bin/python benchmarks/evaluate.py                  # the documented run (20,000 events)
    .venv/bin/python benchmarks/evaluate.py --limit 2000     # a few minutes on a laptop CPU
    .venv/bin/python benchmarks/evaluate.py --limit 200000 --contenders fast   # every event: hybrid,
                                                             # popularity, river_fm

Converts the MovieLens directory (default ``../shared/data/ml-latest-small``) into events in a
temporary directory, then runs ``streamtune evaluate`` on them with the defaults below; any
``streamtune evaluate`` option given here overrides them. Prints the results table and writes
``results.json``, ``results.md`` and ``auc_over_time.png`` into ``--out``
(default ``benchmarks/results/evaluate``).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import tempfile
from pathlib import Path

from streamtune.datasets.jsonl import write_jsonl
from streamtune.datasets.movielens import movielens_events
from streamtune.evaluation.cli import add_evaluate_command, run_evaluate

# The documented run: the first 20,000 events, 8 equal windows (the evaluate default), chunks of
# 512 for the transformer contenders and 8 for the hybrid ones (the evaluate defaults).
DEFAULTS = ["--limit", "20000", "--max-length", "64", "--out", "benchmarks/results/evaluate"]


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request drowns the progress lines
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--movielens", type=Path, default=Path("../shared/data/ml-latest-small"))
    own.add_argument("--events", type=Path, help="an events file to use instead of converting MovieLens")
    known, rest = own.parse_known_args(argv)
    parser = argparse.ArgumentParser(prog="benchmarks/evaluate.py", description=__doc__.splitlines()[0])
    evaluate = add_evaluate_command(parser.add_subparsers())
    with tempfile.TemporaryDirectory(prefix="streamtune-bench-") as scratch:
        events = known.events
        if events is None:
            events = Path(scratch) / "movielens.jsonl"
            count = write_jsonl(movielens_events(known.movielens), events)
            print(f"converted {known.movielens} into {count} events", file=sys.stderr)
        args = evaluate.parse_args([str(events), *DEFAULTS, *rest])
        args.command_line = shlex.join([".venv/bin/python", "benchmarks/evaluate.py", *argv])
        return run_evaluate(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
