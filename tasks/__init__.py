"""The built-in tasks (denoise, segment, matting, depth) and `TaskProblem`, the search problem the command
line builds from a task's settings.

- registry.py: one entry per task (its `Task`, data builders, folder layout, metrics and directions, zoo
  models); `get_task`, `builtin_dataset`, `folder_dataset`, `dataset_options` look names up there.
  names.py: the names alone, light for the command line's parser.
- definitions.py: each task's inputs, loss, prediction and exact metrics (metrics.py computes them).
- data/: the datasets, offline built-ins and on-disk folder layouts.
- train.py: the training loop (`TrainConfig`, `fit`, `evaluate`); preflight.py: checks before training.
- problem.py: `TaskProblem`, a task's data and host behind search's `Problem` interface.

The search (`indexnas.search`) imports nothing from here: the command line hands `TaskProblem` (a factory of
a `Problem`) to `run_search`, and the search trains and scores through that interface alone.
"""
