"""The BPE tokenizer: text normalisation and pre-tokenisation, the naive and the fast
trainer, the vocab.json / merges.txt files, and BPETokenizer (encode, decode, save, load).

May import: the base modules only (fileio, errors); it knows nothing of the model.
"""
