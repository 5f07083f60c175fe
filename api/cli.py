"""The ``guidetune`` command line (the api layer: parses, calls the layers below, prints)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_demo(args: argparse.Namespace) -> int:
    from guidetune.evaluators.demo import run_demo

    report = run_demo(Path(args.out), n=args.n, progress=not args.quiet)
    print(json.dumps(report, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guidetune", description="Automated hyperparameter search for training-free guidance.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="guided sampling demo: unguided vs guided samples, with a picture")
    demo.add_argument("--out", default="out/demo", help="folder for the PNGs and the JSON report")
    demo.add_argument("--n", type=int, default=500, help="samples per method")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
