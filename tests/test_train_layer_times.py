"""Where a training step's time goes: layer hooks time each group's forward and backward, and the shares add up."""

import time

import torch
import transformers as tf
from torch import nn

from expspan_cli.models.tiny import tiny_hybrid_config
from expspan_cli.train.layer_times import LayerTimes, layer_groups, time_split


class _SlowBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        time.sleep(0.2)
        return grad * 2


class _Slow(nn.Module):
    def forward(self, hidden_states):
        time.sleep(0.1)
        return _SlowBackward.apply(hidden_states)


def test_a_layers_forward_and_backward_are_both_counted_and_nothing_else():
    slow, other = _Slow(), nn.Linear(4, 4)
    timer = LayerTimes({"slow": [slow]})
    x = torch.randn(2, 4, requires_grad=True)
    began = time.perf_counter()
    y = slow(hidden_states=other(x))  # passed by keyword, as transformers' decoder layers pass it
    y.sum().backward()
    total = time.perf_counter() - began
    seconds = timer.take()["slow"]
    assert 0.3 <= seconds <= total  # 0.1 s forward + 0.2 s backward, inside the step
    assert timer.take()["slow"] == 0.0  # take() starts the next count


def test_the_tiny_hybrids_step_splits_into_attention_mamba_and_the_rest():
    model = tf.AutoModelForCausalLM.from_config(tiny_hybrid_config(256))
    groups = layer_groups(model)
    assert len(groups["attention"]) >= 1 and len(groups["mamba"]) >= 1
    timer = LayerTimes(groups)
    x = torch.randint(0, 256, (1, 256))
    began = time.perf_counter()
    model(input_ids=x, labels=x).loss.backward()
    step = {"step_s": time.perf_counter() - began, **timer.take()}
    assert step["attention"] > 0 and step["mamba"] > 0
    split = time_split([step])
    assert all(0 < v < 1 for v in split.values()) and abs(sum(split.values()) - 1) < 1e-9
