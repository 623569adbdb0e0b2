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
    _add_bpe_commands(sub)
    return parser


def _add_bpe_commands(sub):
    """`bpe train | encode | decode | show`: the home-made tokenizer (minigpt1/bpe.py)."""
    bpe = sub.add_parser("bpe", help="train, run and inspect the BPE tokenizer")
    commands = bpe.add_subparsers(dest="bpe_command", required=True, metavar="BPE_COMMAND")

    train = commands.add_parser("train", help="learn a vocabulary from text files")
    train.add_argument("--input", nargs="+", required=True, metavar="FILE",
                       help="UTF-8 text files, or directories of *.txt files")
    train.add_argument("--vocab-size", type=int, required=True,
                       help="size of the final vocabulary, special tokens included")
    train.add_argument("--mode", choices=["gpt1", "bytes"], default="gpt1",
                       help="gpt1: lower-cased words with </w>, as GPT-1; bytes: lossless (GPT-2)")
    train.add_argument("--special-tokens", nargs="*", default=[], metavar="NAME",
                       help="special tokens to append, e.g. _start_ _delimiter_ _classify_")
    train.add_argument("--trainer", choices=["fast", "naive"], default="fast",
                       help="naive: the teaching trainer, same result, much slower")
    train.add_argument("--out", required=True, help="directory to write the tokenizer files to")
    train.set_defaults(run=_bpe_train)

    def add_tokenizer_args(command):
        command.add_argument("--tokenizer", required=True, metavar="DIR",
                             help="directory written by `bpe train` (or HuggingFace openai-gpt)")
        command.add_argument("--mode", choices=["gpt1", "bytes"],
                             help="only for directories without minigpt1_bpe.json")

    encode = commands.add_parser("encode", help="print the token ids of a text")
    add_tokenizer_args(encode)
    encode.add_argument("text", nargs="?", help="the text (default: read standard input)")
    encode.add_argument("--tokens", action="store_true", help="print the pieces, not the ids")
    encode.add_argument("--allow-special", action="store_true",
                        help="turn special-token names in the text into their ids")
    encode.set_defaults(run=_bpe_encode)

    decode = commands.add_parser("decode", help="print the text of token ids")
    add_tokenizer_args(decode)
    decode.add_argument("ids", nargs="*", type=int, help="ids (default: read standard input)")
    decode.set_defaults(run=_bpe_decode)

    show = commands.add_parser("show", help="show how each word is merged, piece by piece")
    add_tokenizer_args(show)
    show.add_argument("word", help="a word (or any text: each of its words is shown)")
    show.set_defaults(run=_bpe_show)


def _bpe_train(args):
    import time
    from pathlib import Path

    from .bpe import BPETokenizer
    from .text import read_texts

    paths = []
    for name in args.input:
        path = Path(name)
        found = sorted(path.glob("*.txt")) if path.is_dir() else [path]
        if not found:
            raise ValueError(f"{path}: directory holds no *.txt files")
        paths += found
    start = time.perf_counter()
    tokenizer = BPETokenizer.train(read_texts(paths), args.vocab_size, args.mode,
                                   special_tokens=args.special_tokens, trainer=args.trainer)
    tokenizer.save(args.out)
    print(f"{tokenizer!r} from {len(paths)} file(s) in {time.perf_counter() - start:.1f} s; "
          f"wrote {args.out}")
    return 0


def _load_tokenizer(args):
    from .bpe import BPETokenizer

    return BPETokenizer.load(args.tokenizer, args.mode)


def _bpe_encode(args):
    tokenizer = _load_tokenizer(args)
    text = sys.stdin.read() if args.text is None else args.text
    allowed = "all" if args.allow_special else ()
    if args.tokens:
        print(" ".join(tokenizer.tokens(text, allowed)))
    else:
        print(" ".join(map(str, tokenizer.encode(text, allowed))))
    return 0


def _bpe_decode(args):
    tokenizer = _load_tokenizer(args)
    ids = args.ids
    if not ids:
        words = sys.stdin.read().split()
        if not all(word.isdigit() for word in words):
            raise ValueError("standard input must hold token ids separated by spaces")
        ids = [int(word) for word in words]
    print(tokenizer.decode(ids))
    return 0


def _bpe_show(args):
    tokenizer = _load_tokenizer(args)
    merges = tokenizer.merges
    for steps in tokenizer.explain(args.word):
        for rank, pieces in steps:
            line = "  ".join(pieces)
            how = "" if rank is None else f"merge {rank}: {merges[rank][0]} + {merges[rank][1]}"
            print(f"{line:<40} {how}".rstrip())
        print()
    return 0


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
