"""Fixtures and session settings the test modules share: tiny synthetic corpora, prepared once per shape; and
mamba-ssm's own modules on CPU (tests/mamba_ssm_cpu.py), set up before any test module imports triton and kept
to the test modules that use them."""

import pytest

import mamba_ssm_cpu

mamba_ssm_cpu.prepare_session()


@pytest.fixture(autouse=True, scope="module")
def _mamba_ssm_only_where_used():
    yield
    mamba_ssm_cpu.unload()


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory):
    """`synthetic_data(tokenizer, seq_len, train=, validation=, **SyntheticSpec fields)` -> a prepared data folder;
    the same arguments give the same folder (prepared once per session)."""
    from expspan_cli.data.build import prepare
    from expspan_cli.data.synthetic import SyntheticSpec, synthetic_corpus

    made = {}

    def make(tokenizer="bpe:320", seq_len=256, *, train=8, validation=2, doc_words=300, distance=(16, 200), **spec):
        key = (tokenizer, seq_len, train, validation, doc_words, distance, tuple(sorted(spec.items())))
        if key not in made:
            documents = {"train": train} | ({"validation": validation} if validation else {})
            corpus = synthetic_corpus(SyntheticSpec(documents=documents, doc_words=doc_words, distance=distance,
                                                    **spec))
            out = tmp_path_factory.mktemp("data") / "data"
            made[key] = prepare(corpus, tokenizer=tokenizer, seq_len=seq_len, out=out).path
        return made[key]

    return make
