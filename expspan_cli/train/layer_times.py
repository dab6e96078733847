"""Where a training step's time goes: the attention layers, the Mamba-2 mixers and the rest (embeddings, MLPs,
norms, head, loss, optimizer), for `expspan bench finetune`.

A layer's forward is timed by module hooks; its backward from the moment the gradient of its output is ready to
the moment the gradient of its input is, by hooks on those two tensors (a layer whose input needs no gradient has
no backward of its own to time). Timings are host wall time, so on CUDA they are only meaningful with
CUDA_LAUNCH_BLOCKING=1; the benchmark reports them on CPU."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import TrainerCallback

from expspan_cli.attention.hf import attention_modules
from expspan_cli.models.layers import ssm_mixers

FILE = "layer_times.json"


class LayerTimes:
    """Seconds spent in each group of modules since the last `take()`."""

    def __init__(self, groups: dict[str, list[nn.Module]]):
        self.seconds = {group: 0.0 for group in groups}
        self._started: dict[tuple[str, int], float] = {}
        for group, modules in groups.items():
            for module in modules:
                module.register_forward_pre_hook(self._forward_start(group), with_kwargs=True)
                module.register_forward_hook(self._forward_end(group), with_kwargs=True)

    def _start(self, key: tuple[str, int]) -> None:
        self._started[key] = time.perf_counter()

    def _stop(self, key: tuple[str, int], group: str) -> None:
        began = self._started.pop(key, None)
        if began is not None:
            self.seconds[group] += time.perf_counter() - began

    def _forward_start(self, group: str):
        def hook(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
            self._start(("forward", id(module)))
            x = args[0] if args else kwargs.get("hidden_states")
            if torch.is_tensor(x) and x.requires_grad:
                x.register_hook(lambda grad: self._stop(("backward", id(module)), group))
        return hook

    def _forward_end(self, group: str):
        def hook(module: nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> None:
            self._stop(("forward", id(module)), group)
            out = output[0] if isinstance(output, tuple) else output
            if torch.is_tensor(out) and out.requires_grad:
                out.register_hook(lambda grad: self._start(("backward", id(module))))
        return hook

    def take(self) -> dict[str, float]:
        taken, self.seconds = self.seconds, {group: 0.0 for group in self.seconds}
        return taken


def layer_groups(model: nn.Module) -> dict[str, list[nn.Module]]:
    return {"attention": attention_modules(model), "mamba": list(ssm_mixers(model).values())}


class LayerTimesCallback(TrainerCallback):
    """Per step after the first (warm-up): the step's wall time and the seconds of each layer group, written to
    OUT/layer_times.json when training ends."""

    def __init__(self, out: str | Path):
        self.out, self.steps = Path(out), []
        self.timer: LayerTimes | None = None
        self.began = 0.0

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.timer = LayerTimes(layer_groups(model))

    def on_step_begin(self, args, state, control, **kwargs):
        self.timer.take()
        self.began = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        step = {"step_s": time.perf_counter() - self.began, **self.timer.take()}
        if state.global_step > 1:
            self.steps.append(step)

    def on_train_end(self, args, state, control, **kwargs):
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / FILE).write_text(json.dumps(self.steps), encoding="utf-8")


def time_split(steps: list[dict[str, float]]) -> dict[str, float]:
    """Shares of the step time: attention, mamba and the rest (all other work of the step)."""
    total = sum(s["step_s"] for s in steps)
    attention, mamba = sum(s["attention"] for s in steps), sum(s["mamba"] for s in steps)
    return {"attention": attention / total, "mamba": mamba / total, "rest": (total - attention - mamba) / total}
