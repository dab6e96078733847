"""Training threads follow the load: fewer threads once other processes keep part of a core busy, never more than
training started with, and the thread count does not change the numbers (so a loaded run equals an idle one)."""

import subprocess
import sys
import time

import pytest
import torch
import transformers as tf

from expspan_cli.models.tiny import RECALL_SHAPE, tiny_hybrid_config
from expspan_cli.train.threads import ThreadGovernor, threads_for


@pytest.mark.parametrize("cores, others, cap, threads", [
    (2, 0.0, 2, 2), (2, 0.2, 2, 2), (2, 0.3, 2, 1), (2, 1.0, 2, 1), (2, 3.0, 2, 1),
    (16, 1.0, 16, 15), (16, 0.1, 4, 4), (16, 2.5, 16, 13)])
def test_threads_give_way_to_other_processes(cores, others, cap, threads):
    assert threads_for(cores, others, cap) == threads


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/stat")
def test_a_busy_process_beside_training_takes_a_thread_away():
    before = torch.get_num_threads()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # the spinner is running
        governor = ThreadGovernor(interval=0.5, cores=2)
        time.sleep(1.0)  # this process sleeps: what the machine did meanwhile is the spinner's
        governor.update()
        assert governor.others > 0.5
        assert governor.threads == 1 and torch.get_num_threads() == 1
    finally:
        spinner.kill()
        spinner.wait()
        torch.set_num_threads(before)


def _weights_after_steps(threads: int) -> list[torch.Tensor]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(tiny_hybrid_config(256, **RECALL_SHAPE))
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randint(0, 256, (4, 128))
    for _ in range(3):
        model(input_ids=x, labels=x).loss.backward()
        opt.step()
        opt.zero_grad()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="needs two CPU threads to compare with one")
def test_the_thread_count_does_not_change_the_trained_weights():
    before = torch.get_num_threads()
    try:
        one, two = _weights_after_steps(1), _weights_after_steps(2)
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for a, b in zip(one, two))
