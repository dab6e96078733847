"""RULER's synthetic long-context tasks, generated offline with the model's own tokenizer, scored like upstream."""

from expspan_cli.eval.ruler.tasks import GROUPS, PAPER_TASKS, TASKS, TaskSpec, resolve_tasks

__all__ = ["GROUPS", "PAPER_TASKS", "TASKS", "TaskSpec", "resolve_tasks"]
