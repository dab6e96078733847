"""Trainer callbacks: per-step metrics (JSONL in the run directory), rich progress, and checkpoints that count
only once complete (a `kill -9` mid-save leaves a checkpoint without its marker, which resume ignores)."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import TrainerCallback

from expspan_cli.progress import progress
from expspan_cli.runs import atomic_write_text

COMPLETE = "checkpoint-complete"


def peak_memory_mb() -> float:
    """Peak accelerator memory when on CUDA, else the process's peak resident memory."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 2**20 if sys.platform == "darwin" else kb / 2**10  # macOS reports bytes, Linux KiB


class MetricsCallback(TrainerCallback):
    """One JSON line per logged step: step, loss, lr, grad_norm, tokens/s (since the previous log), peak memory,
    CPU threads."""

    def __init__(self, path: Path, tokens_per_step: int, progress: Progress | None = None):
        self.path, self.tokens_per_step, self.progress = path, tokens_per_step, progress
        self.last_time: float | None = None
        self.last_step = 0
        self.task = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.last_time, self.last_step = time.perf_counter(), state.global_step
        if self.progress is not None and state.is_world_process_zero:
            self.progress.start()
            self.task = self.progress.add_task("training", total=state.max_steps, completed=state.global_step,
                                               rate="")

    def on_log(self, args, state, control, logs: dict[str, Any] | None = None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        now = time.perf_counter()
        steps = state.global_step - self.last_step
        rate = self.tokens_per_step * steps / (now - self.last_time) if steps and now > self.last_time else None
        self.last_time, self.last_step = now, state.global_step
        record = {"step": state.global_step, "loss": logs["loss"], "lr": logs.get("learning_rate"),
                  "grad_norm": logs.get("grad_norm"), "tokens_per_s": rate, "peak_mem_mb": peak_memory_mb(),
                  "threads": torch.get_num_threads(), "time": time.time()}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.task is not None:
            self.progress.update(self.task, completed=state.global_step,
                                 rate=f"loss {logs['loss']:.3f} · lr {logs.get('learning_rate') or 0:.2e} · "
                                      f"{rate or 0:,.0f} tok/s")

    def on_train_end(self, args, state, control, **kwargs):
        if self.task is not None:
            self.progress.stop()


class ThreadsCallback(TrainerCallback):
    """On CPU, the thread count follows the machine's load (train/threads.py); each logged step records it."""

    def __init__(self):
        self.governor = None

    def on_train_begin(self, args, state, control, **kwargs):
        from expspan_cli.train.threads import ThreadGovernor

        self.governor = None if torch.cuda.is_available() else ThreadGovernor()

    def on_step_end(self, args, state, control, **kwargs):
        if self.governor is not None:
            self.governor.update()

    def on_train_end(self, args, state, control, **kwargs):
        if self.governor is not None:  # the next stage in this process starts from the count this one had
            torch.set_num_threads(self.governor.cap)


def training_progress() -> Progress:
    return progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"),
                    TimeRemainingColumn())


class CompleteCheckpointCallback(TrainerCallback):
    """After the Trainer saved checkpoint-N (with PEFT, the adapter holds every trained tensor): the marker that
    makes the checkpoint count."""

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        directory = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        atomic_write_text(directory / COMPLETE, f"{state.global_step}\n")


def last_complete_checkpoint(directory: Path, clean: bool = True) -> Path | None:
    """The newest checkpoint-N with its marker; with `clean`, incomplete ones (killed mid-save) are removed (one
    process of a distributed run cleans, the others only look)."""
    import shutil

    complete = []
    for ckpt in directory.glob("checkpoint-*") if directory.exists() else []:
        if (ckpt / COMPLETE).exists():
            complete.append((int(ckpt.name.split("-")[1]), ckpt))
        elif clean:
            shutil.rmtree(ckpt, ignore_errors=True)
    return max(complete)[1] if complete else None


def truncate_metrics(path: Path, step: int) -> None:
    """Keep the metrics of steps <= `step` (what a resumed run continues from); drops a line cut by a kill."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError):
            continue
    atomic_write_text(path, "".join(f"{line}\n" for line in kept))
