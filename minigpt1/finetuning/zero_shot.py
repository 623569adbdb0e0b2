"""Zero-shot: what the pre-trained language model alone knows of a task (the paper's section 5,
"Zero-shot behaviors", and its Figure 2 right).

No task head, no special token, no update: each heuristic asks the language model how probable
some text is. For token ids x (a context) and c = c_1..c_m (a continuation), one forward pass
over x + c gives

    log P(c | x) = sum_j log P(c_j | x, c_1..c_{j-1})        (continuation_log_probs)
    mean log P(c | x) = log P(c | x) / m                      per token: long texts not punished

and the heuristics, one per kind of task:

    multiple choice   answer = argmax_k mean log P(a_k | context)
                      the paper's RACE and Story Cloze heuristic
    classification    class = argmax_k log P(w_k | text, prompt) - log P(w_k | prompt)
                      w_k: a word naming class k, read after a prompt (the paper's SST-2 reads
                      " positive" or " negative" after " very"). The second term, the word's
                      probability after the prompt alone, takes away the model's preference for
                      some words whatever the text, which would give every example one class.
    word order        s = mean log P(h | p, newline)
                      (entailment) how probable the hypothesis is after the premise: the words
                      in Shakespeare's order should be more probable than the same words shuffled
    similarity        s = (pmi(b after a) + pmi(a after b)) / 2, where
                      pmi(h after p) = mean log P(h | p, newline) - mean log P(h | newline):
                      how much more probable one passage makes the other (pointwise mutual
                      information per token; a newline alone is the neutral context), both
                      orders, as the similarity transformation reads both

A binary score s says "yes" (the label `positive`) for the examples above the median s of the
examples scored together: the Shakespeare tasks are balanced, half of their examples say yes,
and no label is looked at. A "model" here is anything with `forward(ids (B, T)) -> logits
(B, T, V)` and `cfg.n_ctx`, `cfg.vocab_size`: GPT, or a hand-made one in a test.
"""

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from .. import backend
from .metrics import accuracy

LOGITS_BUDGET = 2**24  # logits per forward pass (B x T x V): 64 MiB of float32


def continuation_log_probs(model, pairs, progress=False):
    """For each (context, continuation) pair of token-id lists, the (m,) array of
    log P(c_j | context, c_<j) of the continuation's m tokens.

    The continuation keeps its first n_ctx tokens and the context the tokens just before it
    that fit: n_ctx + 1 in all, the last one only a target. Sequences of similar lengths run
    together, padded on the right: causal attention keeps padding out of every scored position.
    """
    n_ctx, vocab = model.cfg.n_ctx, model.cfg.vocab_size
    sequences, scored = [], []  # each pair's n_ctx + 1 tokens at most; how many are scored
    for context, continuation in pairs:
        continuation = list(continuation)[:n_ctx]
        if not context or not continuation:
            raise ValueError("continuation_log_probs needs a non-empty context and continuation "
                             "(a newline will do as a context)")
        sequences.append((list(context) + continuation)[-(n_ctx + 1) :])
        scored.append(len(continuation))
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    found = [None] * len(sequences)
    batches = list(chunks(order, sequences, vocab))
    for batch in tqdm(batches, desc="zero-shot", unit="batch", disable=not progress,
                      leave=False):
        T = max(len(sequences[i]) for i in batch)
        ids = np.zeros((len(batch), T), dtype=np.int64)  # (b, T), padded with 0 on the right
        for row, i in enumerate(batch):
            ids[row, : len(sequences[i])] = sequences[i]
        logits = model.forward(ids[:, :-1])  # (b, T-1, V): position t predicts token t+1
        xp = backend.xp_of(logits)
        logits = logits - logits.max(axis=-1, keepdims=True)
        logp = logits - xp.log(xp.exp(logits).sum(axis=-1, keepdims=True))  # log-softmax
        targets = xp.asarray(ids[:, 1:, None])  # (b, T-1, 1)
        picked = backend.to_numpy(xp.take_along_axis(logp, targets, axis=-1)[..., 0])
        for row, i in enumerate(batch):
            end = len(sequences[i]) - 1  # one past the position that predicts the last token
            found[i] = picked[row, end - scored[i] : end].astype(np.float64)
    return found


def chunks(order, sequences, vocab):
    """`order` cut into batches whose logits fit LOGITS_BUDGET (the longest sequence counts)."""
    batch = []
    for i in order:
        if batch and (len(batch) + 1) * len(sequences[i]) * vocab > LOGITS_BUDGET:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def mean_log_probs(model, pairs, progress=False):
    """(N,) mean log P(continuation | context) per token, of each pair."""
    return np.array([lp.mean() for lp in continuation_log_probs(model, pairs, progress)])


def multiple_choice_scores(model, questions, progress=False):
    """(N, K): mean log P(answer_k | context) of each question, given as (context, [a_1..a_K])
    token ids. The answer with the highest score is the prediction."""
    pairs = [(context, answer) for context, answers in questions for answer in answers]
    scores = mean_log_probs(model, pairs, progress)
    return scores.reshape(len(questions), -1)


def label_word_scores(model, texts, prompt, words, progress=False):
    """(N, n): log P(w_k | text, prompt) - log P(w_k | prompt) of each text, for the n label
    words w_k (token ids; a word of several tokens counts with all of them)."""
    pairs = [(text + prompt, word) for text in texts for word in words]
    given_text = np.array([lp.sum() for lp in continuation_log_probs(model, pairs, progress)])
    prior = np.array([lp.sum() for lp in continuation_log_probs(model, [(prompt, w)
                                                                        for w in words])])
    return given_text.reshape(len(texts), len(words)) - prior  # (N, n) - (n,)


def following_scores(model, pairs, separator, progress=False):
    """(N,): mean log P(h | p, separator) of each (premise p, hypothesis h) pair."""
    return mean_log_probs(model, [(p + separator, h) for p, h in pairs], progress)


def pmi_scores(model, pairs, separator, progress=False):
    """(N,): mean log P(h | p, separator) - mean log P(h | separator) of each (premise p,
    hypothesis h) pair: the separator alone is the neutral context."""
    alone = mean_log_probs(model, [(separator, h) for _, h in pairs], progress)
    return following_scores(model, pairs, separator, progress) - alone


def similarity_scores(model, pairs, separator, progress=False):
    """(N,): the PMI scores of b after a and of a after b, averaged, for each (a, b)."""
    swapped = [(b, a) for a, b in pairs]
    return (pmi_scores(model, pairs, separator, progress)
            + pmi_scores(model, swapped, separator, progress)) / 2


def above_median(scores, positive=1):
    """Binary predictions: `positive` for scores above their median, the other label of
    (0, 1) for the rest."""
    above = np.asarray(scores) > np.median(scores)
    return np.where(above, positive, 1 - positive)


# ---- the heuristics applied to tasks: texts in, predictions out ----------------------------


@dataclass(frozen=True)
class LabelWords:
    """How a classification task is asked: a prompt after the text, one word per class."""

    prompt: str
    words: tuple[str, ...]  # in the order of the task's labels


LABEL_WORDS = {
    "genre": LabelWords("\nThis play is a", (" comedy", " history", " tragedy")),
    "sst2": LabelWords(" very", (" negative", " positive")),  # the paper's
}
# binary tasks of two texts: how each is scored, and the label a high score says
PAIR_SCORES = {"word-order": (following_scores, 1), "same-work": (similarity_scores, 1)}
SEPARATOR = "\n"  # between a context and what follows it, as lines follow lines in the texts


def zero_shot_predictions(model, tokenizer, spec, examples, progress=False):
    """The heuristic's labels for Examples of the task `spec` (see the module's table)."""
    encode, separator = tokenizer.encode, tokenizer.encode(SEPARATOR)
    if spec.kind == "multiple_choice":
        questions = [(encode(e.segments[0]) + separator, [encode(a) for a in e.segments[1:]])
                     for e in examples]
        return multiple_choice_scores(model, questions, progress).argmax(axis=1)
    if spec.kind == "classification" and spec.name in LABEL_WORDS:
        asked = LABEL_WORDS[spec.name]
        texts = [encode(e.segments[0]) for e in examples]
        words = [encode(word) for word in asked.words]
        return label_word_scores(model, texts, encode(asked.prompt), words, progress).argmax(1)
    if spec.name in PAIR_SCORES:
        pairs = [(encode(e.segments[0]), encode(e.segments[1])) for e in examples]
        score, positive = PAIR_SCORES[spec.name]
        return above_median(score(model, pairs, separator, progress), positive)
    raise ValueError(f"no zero-shot heuristic for task {spec.name} ({spec.kind}); there is one "
                     f"for every multiple-choice task and for "
                     f"{', '.join(sorted({*LABEL_WORDS, *PAIR_SCORES}))}")


def zero_shot_accuracy(model, tokenizer, spec, examples, progress=False):
    """The fraction of `examples` the heuristic gets right."""
    predicted = zero_shot_predictions(model, tokenizer, spec, examples, progress)
    return accuracy(predicted, [e.label for e in examples])
