"""Learning BPE merges: two trainers, one interface, the same answer.

Both trainers see the corpus as a dictionary of distinct words, each word a tuple of base
symbol ids, with how often it occurs:

    words = {(1, 2, 3): 5, (2, 3): 7}    # e.g. "abc" five times and "bc" seven times

count_words and initial_symbols build it from texts. Both trainers return the merges they
learned, in order: the i-th merge (a, b) creates the new symbol `first_id + i`. The rule for
choosing a merge is the same in both:

    the most frequent adjacent pair wins; between pairs equally frequent, the smallest
    (a, b) wins, comparing a first and then b.

Symbol ids grow with age (base symbols first, then merges in order), so on a tie the pair whose
first symbol is older is merged first. Writing the tie-break down matters: with it, the result
depends on the corpus only, never on dictionary order, and the fast trainer can be checked
against the naive one merge by merge.

train_naive is the textbook loop (count every pair, merge the best, repeat): easy to read,
O(merges x corpus). train_fast does the same bookkeeping incrementally and is what
BPETokenizer.train uses by default.
"""

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable
from itertools import pairwise

from tqdm import tqdm

from .files import BYTE_CHARS
from .pretokenization import SPLITTERS

Pair = tuple[int, int]
UNK = "<unk>"  # gpt1 mode's token for characters never seen in training
EOW = "</w>"  # gpt1 mode's end-of-word marker


def get_stats(ids, counts=None, weight=1):
    """Add `weight` to the count of every adjacent pair in `ids`; return the counts.

    >>> get_stats([1, 2, 3, 1, 2])
    {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    >>> get_stats([1, 2], {(1, 2): 1}, weight=10)
    {(1, 2): 11}
    """
    counts = {} if counts is None else counts
    for pair in pairwise(ids):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge(ids, pair, new_id):
    """Replace every occurrence of `pair` in `ids` by `new_id`, scanning left to right.

    Occurrences never overlap: in a run like (7, 7, 7) the leftmost pair wins.

    >>> merge([1, 2, 3, 1, 2], (1, 2), 4)
    [4, 3, 4]
    >>> merge([7, 7, 7], (7, 7), 8)
    [8, 7]
    """
    out = []
    i, n = 0, len(ids)
    while i < n:
        if i < n - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def count_words(texts: Iterable[str], mode: str = "gpt1", progress: bool = False) -> Counter:
    """How often each word occurs in `texts`: all that training keeps of the corpus."""
    counts = Counter()
    for text in tqdm(texts, desc="counting words", unit="text", disable=not progress, delay=1):
        counts.update(SPLITTERS[mode](text))
    if not counts:
        raise ValueError("the training corpus is empty: it holds no words to learn from")
    return counts


def initial_symbols(counts: Counter, mode: str) -> tuple[list[str], dict[tuple[int, ...], int]]:
    """What a trainer starts from: the base tokens, and each word spelled in their ids.

    >>> initial_symbols(Counter({"ab": 2, "b": 1}), "gpt1")
    (['<unk>', 'a', 'b', 'a</w>', 'b</w>'], {(1, 4): 2, (4,): 1})
    """
    if mode == "bytes":
        return list(BYTE_CHARS), {
            tuple(word.encode("utf-8", "surrogatepass")): n for word, n in counts.items()
        }
    chars = sorted(set("".join(counts)))
    base = [UNK, *chars, *(c + EOW for c in chars)]
    symbol = {t: i for i, t in enumerate(base)}
    return base, {
        (*(symbol[c] for c in word[:-1]), symbol[word[-1] + EOW]): n
        for word, n in counts.items()
    }


def train_naive(words: dict[tuple[int, ...], int], num_merges: int, first_id: int) -> list[Pair]:
    """The teaching trainer: recount every pair of every word after each merge.

    Wikipedia's example "aaabdaaabac" as one word, with a, b, c, d = 0, 1, 2, 3:

    >>> train_naive({(0, 0, 0, 1, 3, 0, 0, 0, 1, 0, 2): 1}, num_merges=3, first_id=4)
    [(0, 0), (0, 1), (4, 5)]

    (a, a) occurs 4 times and becomes Z = 4: Z a b d Z a b a c. Now (Z, a) and (a, b) both
    occur twice; the tie goes to the smaller pair (0, 1), so Y = ab = 5: Z Y d Z Y a c.
    Finally (Z, Y) occurs twice and becomes X = 6: X d X a c, Wikipedia's answer.
    """
    merges = []
    for new_id in range(first_id, first_id + num_merges):
        stats = {}
        for word, count in words.items():
            get_stats(word, stats, weight=count)
        if not stats:  # every word is a single symbol: nothing left to merge
            break
        # Highest count first; on a tie the smallest pair (see the module docstring).
        pair = min(stats, key=lambda p: (-stats[p], p))
        # Two different words never become equal by a merge (the new id can be split back
        # into the pair), so the dictionary keeps one entry per word.
        words = {tuple(merge(word, pair, new_id)): count for word, count in words.items()}
        merges.append(pair)
    return merges


def train_fast(
    words: dict[tuple[int, ...], int], num_merges: int, first_id: int, progress: bool = False
) -> list[Pair]:
    """The same merges as train_naive, updating pair counts instead of recounting them.

    Three structures carry the state from one merge to the next:

        pair_counts  pair -> how often it occurs in the corpus (words weighted by count)
        where        pair -> indices of the words that contain (or once contained) it
        heap         (-count, pair) entries, so heappop gives the best pair, ties included

    A merge only touches the words listed in where[pair]; in each, the pairs of the old
    spelling are uncounted and those of the new spelling counted. Counts of old pairs only ever
    go down, and pairs that go up are new (they contain the new symbol) and get pushed, so a
    heap entry is never smaller than the true count. A popped entry whose count is out of date
    is pushed back with the true one ("lazy deletion"); the first up-to-date entry popped is
    the true best pair. Memory stays proportional to the number of distinct words.
    """
    symbols = [list(word) for word in words]
    counts = list(words.values())  # Python ints: a count never overflows
    pair_counts = defaultdict(int)
    where = defaultdict(set)
    for i, (word, count) in enumerate(zip(symbols, counts, strict=True)):
        for pair in pairwise(word):
            pair_counts[pair] += count
            where[pair].add(i)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    merges = []
    bar = tqdm(total=num_merges, desc="merges", unit="merge", disable=not progress, delay=1)
    while len(merges) < num_merges and heap:
        neg_count, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count != -neg_count:  # out of date: put it back with its true count
            if count > 0:
                heapq.heappush(heap, (-count, pair))
            continue
        new_id = first_id + len(merges)
        merges.append(pair)
        new_pairs = set()
        for i in where.pop(pair):
            old = symbols[i]
            new = merge(old, pair, new_id)
            if len(new) == len(old):  # a neighbour's merge already took the pair away
                continue
            count = counts[i]
            for p in pairwise(old):
                pair_counts[p] -= count
            for p in pairwise(new):
                pair_counts[p] += count
                if new_id in p:
                    where[p].add(i)
                    new_pairs.add(p)
            symbols[i] = new
        del pair_counts[pair]  # now 0: every occurrence was merged
        for p in new_pairs:
            heapq.heappush(heap, (-pair_counts[p], p))
        bar.update()
    bar.close()
    return merges
