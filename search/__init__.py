"""Architecture search around Index Networks: tasks, data, training, and the Optuna study."""
