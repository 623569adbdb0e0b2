"""The model: one post-LN block, GPT (embeddings -> blocks -> tied LM head, the L1 loss),
its parameters (names, shapes, initialisation), generation with a key/value cache, and
HuggingFace folders read and written.

May import: layers/, fast/ and the base modules; never training/, finetuning/ or jobs/.
"""
