"""`python -m minigpt1 <command>`: the command line. The only module that reads argv."""

import argparse
import sys


def _demo(args):
    """Until pre-training lands: train a small model on a short text and show the loss fall."""
    from .demo import run_demo

    run_demo(steps=args.steps, seed=args.seed)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m minigpt1",
        description="GPT-1 rebuilt from scratch in NumPy: train, tokenize, inspect.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="train a small GPT on a short text; print the falling loss")
    demo.add_argument("--steps", type=int, default=300, help="optimizer steps (default 300)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(run=_demo)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
