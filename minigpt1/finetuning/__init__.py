"""Fine-tuning's pieces: the four input transformations, the task model (L2 and L3), the
task file readers (GLUE, SNLI, Story Cloze, RACE), the Shakespeare tasks, and the metrics.

May import: model/, corpus/, tokenizer/, layers/ and the base modules; never training/.
"""
