"""Training: AdamW and the schedules (optim.py), the one training loop (loop.py), the two
objectives it drives (lm_objective.py: L1 on windows of text; task_objective.py: L2/L3 on a
task), what an update shares between them (update.py, options.py), checkpoints, data
parallelism, and estimates of FLOPs and memory.

May import: finetuning/, model/, corpus/ and below; never jobs/ or the command line.
"""
