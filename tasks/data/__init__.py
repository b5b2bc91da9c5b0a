"""The built-in tasks' datasets: offline built-ins made from shipped photographs, and on-disk folder layouts.

One module per task (denoise.py, segment.py, matting.py, depth.py) holds its `builtin` and `from_folder`
builders and its folder `LAYOUT`; builders.py, crops.py, folders.py, images.py, checks.py, dataset.py and
validation.py are what they share. Both builders return (train, val): training sets make fresh random
samples on every access (seed them through torch), validation sets are fixed by their seed.

Look builders up by task name through tasks/registry.py (`builtin_dataset`, `folder_dataset`,
`dataset_options`). The search never reads these: `TaskProblem` (tasks/problem.py) builds the data and
the search sees only its `Problem` interface.
"""
