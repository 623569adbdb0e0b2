"""Training: AdamW and the schedules, the training loop, the two objectives it drives
(L1 on windows of text, L2/L3 on a task), checkpoints, data parallelism, and estimates of
FLOPs and memory.

May import: finetuning/, model/, corpus/ and below; never jobs/ or the command line.
"""
