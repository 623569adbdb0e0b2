"""The jobs a user runs: pretrain, finetune, ablation, demo. Each turns a plan into a run
folder and drives training/; the run-folder helpers they share live in run_folder.py.

May import: training/ and everything below; only cli.py imports jobs.
"""
