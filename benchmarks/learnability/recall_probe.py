"""Learnability probe: can a tiny hybrid learn to recall facts in text at 256 tokens within minutes of CPU?

The learning curve behind recipes/tiny.yaml's pre-training, in a bare loop that scores recall every 100 steps (the
pipeline scores only the finished model). It pre-trains the `tiny-recall-hybrid` preset (one Mamba-2 layer, two
attention layers, width 128, tied embeddings) on the synthetic corpus's facts with the three things the probes in
benchmarks/learnability/README.md found necessary for the content-based copy to form and to reach the facts:
  - a compact vocabulary (`bpe:256:compact`): the characters the corpus uses, digits split, every row used;
  - short rows first: 64 tokens, then 128, then 256;
  - an induction warm-up: copy rows (expspan_cli/train/curriculum.py), alone at first, then in half the rows.
The question is answered by restating the fact ("Answer: the pin of Dara Vell is 4821."), so the value follows
the same words in both places. Prints a curve and writes it, with the machine, as JSON:

    python benchmarks/learnability/recall_probe.py --out benchmarks/learnability/recall-probe-cpu-2cores.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch
import transformers as tf

from expspan_cli.data.synthetic import SyntheticSpec, locate_recalls, recall_document
from expspan_cli.data.tokenizer import train_bpe
from expspan_cli.models.tiny import RECALL_SHAPE, tiny_hybrid_config
from expspan_cli.train.curriculum import copy_row, copy_segment

CONTEXT = 256
PHASES = ((600, 64, 1.0), (400, 128, 0.5), (1400, 256, 0.5))  # (steps, row length, share of copy rows)


def value_windows(docs: list[dict], tok) -> tuple[torch.Tensor, list[list[tuple[int, int]]]]:
    """Disjoint 256-token windows and, per window, the (start, end) token span of each value whose fact is inside
    (one token per digit: the tokenizer splits digits)."""
    locate_recalls(docs, tok)
    rows, spans = [], []
    for doc in docs:
        ids = tok(doc["text"], add_special_tokens=False)["input_ids"]
        for s in range(0, len(ids) - CONTEXT + 1, CONTEXT):
            inside = [(r["answer_token"] - s, r["answer_token"] - s + len(r["value"])) for r in doc["recalls"]
                      if s <= r["fact_token"] and r["answer_token"] + len(r["value"]) <= s + CONTEXT]
            rows.append(ids[s:s + CONTEXT])
            spans.append(inside)
    return torch.tensor(rows), spans


def copy_rows(n: int, length: int, vocab: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n copy rows (the pre-training curriculum's) and where each one's repeat starts."""
    rows, starts = zip(*(copy_row(length, vocab, gen) for _ in range(n)))
    return torch.stack(rows), torch.tensor(starts)


@torch.no_grad()
def evaluate(model, rows: torch.Tensor, spans, vocab: int) -> dict:
    model.eval()
    digits = exact = total = 0
    for i in range(0, len(rows), 16):
        pred = model(input_ids=rows[i:i + 16]).logits.argmax(-1)
        for b, window in enumerate(spans[i:i + 16]):
            for start, end in window:  # the token at t is predicted at t - 1
                ok = pred[b, start - 1:end - 1] == rows[i + b, start:end]
                digits += int(ok.sum())
                exact += bool(ok.all())
                total += 1
    x, starts = copy_rows(32, CONTEXT, vocab, torch.Generator().manual_seed(1))
    seg = copy_segment(CONTEXT)
    pred = model(input_ids=x).logits.argmax(-1)
    copied = torch.stack([(pred[b, s:s + seg - 1] == x[b, s + 1:s + seg]).float().mean() for b, s in enumerate(starts)])
    model.train()
    n_digits = sum(e - s for w in spans for s, e in w)
    return {"value_digit_acc": 100 * digits / n_digits, "value_exact": 100 * exact / total, "values": total,
            "copy_acc": 100 * copied.mean().item()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--docs", type=int, default=600)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-tokens", type=int, default=2048)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(2)
    spec = SyntheticSpec(seed=0, documents={"train": args.docs, "validation": 24}, doc_words=1600, facts=60,
                         distance=(4, 150), answer="restate")
    train = [recall_document(spec, "train", i) for i in range(args.docs)]
    val = [recall_document(spec, "validation", i) for i in range(24)]
    tok = train_bpe(args.vocab, iter([d["text"] for d in train]), compact=True)
    vocab = len(tok)
    stream = torch.tensor([t for ids in tok([d["text"] for d in train], add_special_tokens=False)["input_ids"]
                           for t in ids + [tok.eos_token_id]])
    rows, spans = value_windows(val, tok)
    cfg = tiny_hybrid_config(vocab, CONTEXT, **RECALL_SHAPE)
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    curve, step, t0 = [], 0, time.time()
    for steps, length, share in PHASES:
        for _ in range(steps):
            n = args.batch_tokens // length
            starts = torch.randint(0, len(stream) - length, (n,), generator=gen)
            x = torch.stack([stream[s:s + length] for s in starts])
            use_copy = torch.rand(n, generator=gen) < share
            if use_copy.any():
                x[use_copy] = copy_rows(int(use_copy.sum()), length, vocab, gen)[0]
            loss = model(input_ids=x, labels=x).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            if step % args.every == 0:
                point = {"step": step, "row_tokens": length, "seconds": round(time.time() - t0, 1),
                         "train_loss": round(loss.item(), 4), **evaluate(model, rows, spans, vocab)}
                curve.append(point)
                print(json.dumps(point), flush=True)
    record = {"probe": "recall_probe", "machine": {"host": platform.node(), "platform": platform.platform(),
                                                   "torch": torch.__version__, "threads": torch.get_num_threads()},
              "vocab": vocab, "params": sum(p.numel() for p in model.parameters()), "phases": PHASES,
              "value_windows": len(rows), "values": sum(len(w) for w in spans), "lr": args.lr,
              "batch_tokens": args.batch_tokens, "curve": curve}
    tmp = f"{args.out}.tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, args.out)  # a killed run leaves no half-written record


if __name__ == "__main__":
    main()
