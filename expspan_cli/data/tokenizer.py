"""Tokenizers for prepared data: the model's own (a transformers id or local path) or a BPE trained on the training
split (`bpe:N`, for tiny models). The tokenizer is saved with the data and every later stage loads that copy; its
hash (of the token -> id map and the special tokens) is what ties a model to the data.

`bpe:N:compact` is the BPE a tiny model learns in-context recall with (benchmarks/learnability): its alphabet is
only the characters the training text uses (others become UNK) and every digit is a token of its own, so no
embedding row goes unused and a number is copied digit by digit."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np

from expspan_cli.errors import ExpspanError, require

BPE_PREFIX, COMPACT = "bpe:", ":compact"
EOS, PAD, UNK = "<|endoftext|>", "<|pad|>", "<|unk|>"
_MIN_BPE = 256 + 2  # the byte alphabet plus the two special tokens
_MIN_COMPACT = 32


class BpeSpec(NamedTuple):
    vocab: int
    compact: bool


def bpe_spec(spec: str) -> BpeSpec | None:
    """The (validated) vocab size and form of a `bpe:N` or `bpe:N:compact` spec; None for a transformers id or path."""
    if not spec.startswith(BPE_PREFIX):
        return None
    raw = spec[len(BPE_PREFIX):]
    compact = raw.endswith(COMPACT)
    raw = raw[:-len(COMPACT)] if compact else raw
    least = _MIN_COMPACT if compact else _MIN_BPE
    require(raw.isdigit() and int(raw) >= least, f"bad tokenizer {spec!r}",
            hint=f"bpe:N trains a byte-level BPE with vocab N >= {_MIN_BPE} (e.g. bpe:4096); bpe:N:compact one over "
                 f"the characters the text uses, N >= {_MIN_COMPACT} (e.g. bpe:256:compact)")
    return BpeSpec(int(raw), compact)


def train_bpe(vocab_size: int, texts: Iterator[str], compact: bool = False) -> Any:
    """A byte-level BPE (GPT-2 style pre-tokenization) trained on texts, as a transformers tokenizer. The full form
    has the whole byte alphabet (no unknown tokens) and EOS and PAD; the compact form (module doc) has the bytes the
    texts use, digits split, and EOS and UNK (PAD falls back to EOS)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    if compact:
        tok = Tokenizer(models.BPE(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, UNK], show_progress=False)
        special = {"eos_token": EOS, "unk_token": UNK}
    else:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = byte_level
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, PAD], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        special = {"eos_token": EOS, "pad_token": PAD}
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **special)


def load_tokenizer(spec: str) -> Any:
    """The tokenizer of a transformers id or local path; a hub id that cannot be reached is one error line."""
    from transformers import AutoTokenizer

    from expspan_cli.data.sources import quiet_hub

    try:
        with quiet_hub():
            tok = AutoTokenizer.from_pretrained(spec)
    except Exception as err:  # noqa: BLE001 - missing path, unknown id and no network all mean "cannot load"
        raise ExpspanError(f"cannot load tokenizer {spec!r} ({type(err).__name__})",
                           hint="--tokenizer takes a local tokenizer/model folder, a reachable hub id, or bpe:N") \
            from None
    require(tok.eos_token_id is not None, f"tokenizer {spec!r} has no EOS token",
            hint="documents are joined with EOS when packed; choose a tokenizer that defines one")
    return tok


def tokenizer_hash(tok: Any) -> str:
    """Equal for two tokenizers exactly when they map the same tokens to the same ids and agree on special tokens."""
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: (kv[1], kv[0]))
    payload = json.dumps({"vocab": vocab, "special": sorted(tok.all_special_tokens)}, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def pad_id(tok: Any) -> int:
    """The id that fills the last packed block: the tokenizer's PAD, else EOS."""
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


def make_encoder(tok: Any) -> Callable[[list[str]], list[np.ndarray]]:
    """texts -> int32 token ids, no special tokens added (EOS is added by packing). A fast tokenizer (or a bare
    `tokenizers.Tokenizer`) is called through its Rust backend in one batch, the same call bare `tokenizers` makes."""
    from tokenizers import Tokenizer

    backend = tok if isinstance(tok, Tokenizer) else getattr(tok, "backend_tokenizer", None)
    if backend is not None:
        encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
        return lambda texts: [np.asarray(e.ids, dtype=np.int32) for e in encode(texts, add_special_tokens=False)]
    return lambda texts: [np.asarray(ids, dtype=np.int32)
                          for ids in tok(texts, add_special_tokens=False)["input_ids"]]
