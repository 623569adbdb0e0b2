"""minigpt1: GPT-1 (Radford et al., 2018) with every forward and backward pass written by hand."""
