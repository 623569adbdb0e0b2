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
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from itertools import pairwise
from operator import add

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
        where        pair -> indices of the words that contain (or once contained) it,
                     a word listed once per occurrence
        heap         (-count, pair) entries, so heappop gives the best pair, ties included

    A merge only touches the words listed in where[pair] (merge_everywhere below). Counts of
    old pairs only ever go down, and pairs that go up are new (they contain the new symbol) and
    get pushed, so a heap entry is never smaller than the true count. A popped entry whose
    count is out of date is pushed back with the true one ("lazy deletion"); the first
    up-to-date entry popped is the true best pair. Memory stays proportional to the number of
    distinct words.

    For speed, a word is spelled as a string with one character per symbol, chr(id): a merge
    is then str.replace, run in C, and a pair is a two-character string. Strings compare code
    point by code point, so the smallest pair of strings is the smallest pair of ids and the
    tie-break is unchanged.
    """
    if first_id + num_merges > sys.maxunicode + 1:
        raise ValueError(
            f"train_fast spells each symbol as one character, so it handles at most "
            f"{sys.maxunicode + 1:,} symbol ids, not {first_id + num_merges:,}: ask for fewer "
            "merges (a smaller vocabulary), or use train_naive"
        )
    spelled = ["".join(map(chr, word)) for word in words]  # (104, 105) -> "hi"
    counts = list(words.values())  # Python ints: a count never overflows
    where = defaultdict(list)
    for i, word in enumerate(spelled):
        for pair in map(add, word, word[1:]):  # "abc" -> "ab", "bc"
            where[pair].append(i)  # once per occurrence: a word may hold a pair twice
    pair_counts = {pair: total(ids, counts) for pair, ids in where.items()}
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
        new_symbol = chr(first_id + len(merges))
        merges.append((ord(pair[0]), ord(pair[1])))
        for new_pair in merge_everywhere(pair, new_symbol, spelled, counts, pair_counts, where):
            heapq.heappush(heap, (-pair_counts[new_pair], new_pair))
        bar.update()
    bar.close()
    return merges


def merge_everywhere(
    pair: str,
    z: str,
    spelled: list[str],
    counts: list[int],
    pair_counts: dict[str, int],
    where: dict[str, list[int]],
) -> list[str]:
    """Merge `pair` (two characters, a b) into the symbol `z` in every word that holds it;
    update pair_counts and where; return the new pairs (each one holds z).

    In a word ... x a b y ... with count n, only the neighbours change:

        c(x, a) -= n   c(a, b) -= n   c(b, y) -= n      c(x, z) += n   c(z, y) += n

    Where the pair occurs twice or more in a word (a b a b, or a a a a for the pair a a), the
    occurrences can share neighbours, so the old spelling is uncounted and the new one counted.
    c(a, b) ends at 0 and is deleted. A new pair's count is summed once, at the end, from the
    words that hold it.
    """
    a, b = pair
    fresh = defaultdict(list)  # new pair -> indices of the words holding it, once per occurrence
    for i in where.pop(pair):
        old = spelled[i]
        new = old.replace(pair, z)  # left to right, no overlaps: exactly merge()
        merged = len(old) - len(new)  # how many times the pair occurred
        if merged == 1:
            n, j = counts[i], old.find(pair)
            if j > 0:  # x a -> x z
                pair_counts[old[j - 1] + a] -= n
                fresh[new[j - 1 : j + 1]].append(i)
            if j + 2 < len(old):  # b y -> z y
                pair_counts[b + old[j + 2]] -= n
                fresh[new[j : j + 2]].append(i)
        elif merged == 0:  # an earlier merge (or visit: listed twice) took the pair away
            continue
        else:
            n = counts[i]
            for old_pair in map(add, old, old[1:]):
                pair_counts[old_pair] -= n
            for new_pair in map(add, new, new[1:]):
                if z in new_pair:
                    fresh[new_pair].append(i)
                else:
                    pair_counts[new_pair] += n
        spelled[i] = new
    del pair_counts[pair]
    for new_pair, ids in fresh.items():
        pair_counts[new_pair] = total(ids, counts)
        where[new_pair] = ids
    return list(fresh)


def total(ids: list[int], counts: list[int]) -> int:
    """How often the words `ids` occur together (a word listed twice counts twice)."""
    return sum(map(counts.__getitem__, ids))
