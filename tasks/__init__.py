"""The built-in tasks (denoise, segment, matting, depth): their offline data, losses, exact metrics, training
loop, and `TaskProblem`, the search problem the command line builds from a task's settings.

The search (`indexnas.search`) knows none of this: it is handed a `Problem` (or a factory of one) and
trains and scores through that interface alone.
"""
