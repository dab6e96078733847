"""A pre-training curriculum: short rows first, and an induction warm-up of copy rows.

A tiny hybrid trained on text alone at 256 tokens never learns to look a fact up in its context (see
benchmarks/learnability). What makes the content-based copy form within minutes, and carry over to facts in text:
train on short rows first (64, then 128, then 256 tokens: the same tokens a step, cut finer), and replace a share
of the rows with copy rows, where a random segment over the whole vocabulary is repeated at a random offset.

A recipe gives the phases in order, each `{steps, row_len, copy}`; the last one has no `steps` and runs until
`max_steps`. Rows are cut from the prepared blocks, so `row_len` must divide the training length. Every example is
a function of its position in the run (seeded), so a resumed run sees exactly the batches an uninterrupted one does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from expspan_cli.config import bounded, build
from expspan_cli.errors import require



@dataclass(frozen=True)
class Phase:
    steps: int | None = bounded(None, gt=0, what="a positive integer")  # None: the last phase, until max_steps
    row_len: int = bounded(None, ge=16, what="an integer >= 16")  # required
    copy: float = bounded(0.0, ge=0, le=1, what="a share in [0, 1]")  # share of rows that are copy rows


def parse_curriculum(raw: list[Any], max_steps: int) -> list[Phase]:
    """Validated phases; every error names the phase and field (`curriculum[1].row_len`)."""
    require(isinstance(raw, list) and raw, "recipe field 'curriculum' must be a list of phases",
            hint="e.g. [{steps: 600, row_len: 64, copy: 1.0}, {row_len: 256, copy: 0.5}]")
    phases = []
    for i, item in enumerate(raw):
        where = f"curriculum[{i}]"
        require(isinstance(item, dict), f"recipe field {where} must be a mapping of steps, row_len, copy")
        last = i == len(raw) - 1
        require((item.get("steps") is None) == last, f"recipe field {where}.steps " + (
            "is not taken by the last phase, which runs until max_steps" if last else
            "must be given (a positive step count)"))
        require(item.get("row_len") is not None, f"recipe field {where}.row_len must be an integer >= 16, got None")
        phases.append(build(Phase, item, where, quote=False))
    fixed = sum(p.steps for p in phases[:-1])
    require(fixed < max_steps, f"the curriculum's phases before the last take {fixed} steps, max_steps is "
            f"{max_steps}", hint="raise max_steps or shorten the phases")
    return phases


def check_row_lengths(phases: list[Phase], seq_len: int) -> None:
    for i, phase in enumerate(phases):
        require(seq_len % phase.row_len == 0, f"recipe field curriculum[{i}].row_len {phase.row_len} does not divide "
                f"the training length {seq_len}", hint="rows are cut from the training blocks")


def copy_segment(row_len: int) -> int:
    """Tokens in a copy row's repeated segment: 3/8 of the row, so both copies fit with room to move the second."""
    return row_len * 3 // 8


def copy_row(row_len: int, vocab: int, gen: torch.Generator) -> tuple[torch.Tensor, int]:
    """A row of random ids whose first segment is repeated once at a random offset, and where the repeat starts."""
    seg = copy_segment(row_len)
    gap = int(torch.randint(0, row_len - 2 * seg + 1, (1,), generator=gen))
    segment = torch.randint(0, vocab, (seg,), generator=gen)
    noise = torch.randint(0, vocab, (row_len - seg,), generator=gen)
    return torch.cat([segment, noise[:gap], segment, noise[gap:row_len - 2 * seg]]), seg + gap


class CurriculumBlocks(torch.utils.data.Dataset):
    """Exactly the run's examples, in order (read with a sequential sampler): example i is a training block (a
    seeded shuffle per pass over the blocks) cut into its step's rows, a share of them replaced by copy rows."""

    def __init__(self, blocks: Any, phases: list[Phase], max_steps: int, blocks_per_step: int, vocab: int,
                 seed: int):
        self.blocks, self.phases, self.vocab, self.seed = blocks, phases, vocab, seed
        self.blocks_per_step, self.length = blocks_per_step, max_steps * blocks_per_step
        self._orders: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return self.length

    def phase(self, step: int) -> Phase:
        for phase in self.phases[:-1]:
            if step < phase.steps:
                return phase
            step -= phase.steps
        return self.phases[-1]

    def _block(self, i: int) -> torch.Tensor:
        n = len(self.blocks)
        rank, position = divmod(i, n)
        if rank not in self._orders:
            self._orders[rank] = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + rank))
        return torch.as_tensor(self.blocks[int(self._orders[rank][position])]["input_ids"], dtype=torch.long)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        phase = self.phase(i // self.blocks_per_step)
        rows = self._block(i).view(-1, phase.row_len).clone()
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        for r in torch.nonzero(torch.rand(len(rows), generator=gen) < phase.copy).flatten().tolist():
            rows[r] = copy_row(phase.row_len, self.vocab, gen)[0]
        return {"input_ids": rows}


def curriculum_trainer(recipe: Any, blocks: Any, seq_len: int, vocab: int, world_size: int) -> tuple[Any, type]:
    """The run's examples and a Trainer class that reads them in order (the phases follow the step)."""
    from transformers import Trainer

    phases = parse_curriculum(recipe.curriculum, recipe.max_steps)
    check_row_lengths(phases, seq_len)
    per_step = recipe.per_device_batch_size * recipe.grad_accum * world_size

    class InOrderTrainer(Trainer):
        def _get_train_sampler(self, train_dataset: Any = None) -> torch.utils.data.Sampler:
            return torch.utils.data.SequentialSampler(train_dataset or self.train_dataset)

    return CurriculumBlocks(blocks, phases, recipe.max_steps, per_step, vocab, recipe.seed), InOrderTrainer
