"""Text for pre-training: folders of .txt files -> train/validation split -> cached token
ids -> windows; and the default corpus, Shakespeare.

May import: tokenizer/ and the base modules; never the model.
"""
