"""`expspan prepare` on local PG-19-layout folders and local text: both views, token accounting, no-op reruns,
--force, and one-line errors for bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from expspan_cli.cli import main
from expspan_cli.data import check_tokenizer, load_prepared
from expspan_cli.data.synthetic import SyntheticSpec, haystack_document
from expspan_cli.errors import ExpspanError


def run(argv: list[str], capsys) -> tuple[int, str]:
    """Run the console script in-process; (exit code, stderr)."""
    old = sys.argv
    sys.argv = ["expspan", *argv]
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    finally:
        sys.argv = old
    return code, capsys.readouterr().err


def book(i: int, words: int) -> str:
    return haystack_document(SyntheticSpec(seed=i, haystack_words=words), i)["text"]


@pytest.fixture(scope="module")
def pg19_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pg19")
    for split, n in (("train", 6), ("validation", 2), ("test", 2)):
        (root / split).mkdir()
        for i in range(n):
            (root / split / f"{100 + i}.txt").write_text(book(len(split) * 10 + i, 300 + 250 * i),
                                                         encoding="utf-8")
    return root


def test_pg19_layout_makes_both_views_and_accounts_for_every_token(pg19_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run(["prepare", "pg19", "--source", str(pg19_dir), "--tokenizer", "bpe:4096", "--seq-len", "2048",
                     "--out", str(out)], capsys)
    assert code == 0, err
    data = load_prepared(out)
    m = data.manifest
    assert m["kind"] == "pg19" and m["seq_len"] == 2048 and set(m["splits"]) == {"train", "validation", "test"}
    assert set(m["views"]["packed"]) == {"train"} and set(m["views"]["docs"]) == {"validation", "test"}
    tok = data.tokenizer
    check_tokenizer(data, tok)
    books = sorted((pg19_dir / "train").glob("*.txt"))
    ids = [tok(p.read_text(encoding="utf-8"), add_special_tokens=False)["input_ids"] for p in books]
    stream = np.concatenate([np.array(x + [tok.eos_token_id]) for x in ids])
    packed = data.packed("train")
    assert all(len(row) == 2048 for row in packed["input_ids"])
    flat = np.concatenate([np.array(row) for row in packed["input_ids"]])
    view = m["views"]["packed"]["train"]
    # packed tokens = sum of book tokens + one EOS per book; only the last block's tail is padding
    assert view["tokens"] == sum(len(x) for x in ids) + len(books) == len(stream)
    assert view["eos"] == len(books) and len(flat) == view["tokens"] + view["padding"] < view["tokens"] + 2048
    assert np.array_equal(flat[:len(stream)], stream)
    assert (flat[len(stream):] == m["pad_token_id"]).all()
    docs = data.docs("test")
    assert docs.column_names[:3] == ["input_ids", "text", "title"] and docs.num_rows == 2
    first = sorted((pg19_dir / "test").glob("*.txt"))[0]
    assert docs[0]["title"] == first.stem and docs[0]["text"] == first.read_text(encoding="utf-8")
    assert docs[0]["input_ids"] == tok(docs[0]["text"], add_special_tokens=False)["input_ids"]
    assert m["views"]["docs"]["test"]["tokens"] == sum(len(r) for r in docs["input_ids"])

    # same inputs again: a no-op that says so; --force rebuilds
    made = (out / "manifest.json").stat().st_mtime_ns
    code, err = run(["prepare", "pg19", "--source", str(pg19_dir), "--tokenizer", "bpe:4096", "--seq-len", "2048",
                     "--out", str(out)], capsys)
    assert code == 0 and "nothing to do" in err
    assert (out / "manifest.json").stat().st_mtime_ns == made
    code, err = run(["prepare", "pg19", "--source", str(pg19_dir), "--tokenizer", "bpe:4096", "--seq-len", "2048",
                     "--out", str(out), "--force"], capsys)
    assert code == 0 and "nothing to do" not in err
    assert (out / "manifest.json").stat().st_mtime_ns != made
    assert load_prepared(out).tokenizer_hash == data.tokenizer_hash  # BPE training is deterministic

    # other options on the same --out are refused without --force
    code, err = run(["prepare", "pg19", "--source", str(pg19_dir), "--tokenizer", "bpe:4096", "--seq-len", "1024",
                     "--out", str(out)], capsys)
    assert code == 2 and "seq_len" in err and "--force" in err


def test_parallel_tokenization_and_a_model_tokenizer_path_give_the_same_ids(pg19_dir, tmp_path, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    assert run(["prepare", "pg19", "--source", str(pg19_dir), "--tokenizer", "bpe:512", "--seq-len", "64",
                "--splits", "train,test", "--out", str(first)], capsys)[0] == 0
    # the saved tokenizer folder stands for "the model's own tokenizer" given as a local path
    code, err = run(["prepare", "pg19", "--source", str(pg19_dir), "--tokenizer", str(first / "tokenizer"),
                     "--seq-len", "64", "--splits", "train,test", "--num-proc", "2", "--batch-docs", "1",
                     "--out", str(second)], capsys)
    assert code == 0, err
    a, b = load_prepared(first), load_prepared(second)
    assert a.tokenizer_hash == b.tokenizer_hash
    assert a.packed()["input_ids"] == b.packed()["input_ids"]
    assert a.docs("test")["input_ids"] == b.docs("test")["input_ids"]


def test_packed_view_recut_to_a_divisor_keeps_the_stream(pg19_dir, tmp_path, capsys):
    out = tmp_path / "o"
    assert run(["prepare", "pg19", "--source", str(pg19_dir), "--tokenizer", "bpe:300", "--seq-len", "256",
                "--splits", "train", "--out", str(out)], capsys)[0] == 0
    data = load_prepared(out)
    short = data.packed(seq_len=64)
    assert len(short) == 4 * len(data.packed())
    assert sum(short["input_ids"], []) == sum(data.packed()["input_ids"], [])
    with pytest.raises(ExpspanError, match="does not divide"):
        data.packed(seq_len=100)
    with pytest.raises(ExpspanError, match="no docs view"):
        data.docs("validation")


def test_non_utf8_book_is_skipped_with_a_warning_naming_it(tmp_path, capsys):
    src = tmp_path / "src"
    (src / "train").mkdir(parents=True)
    (src / "train" / "1.txt").write_text(book(1, 200), encoding="utf-8")
    (src / "train" / "2.txt").write_bytes(b"caf\xe9 latin-1 text")
    code, err = run(["prepare", "pg19", "--source", str(src), "--tokenizer", "bpe:300", "--seq-len", "128",
                     "--splits", "train", "--out", str(tmp_path / "o")], capsys)
    assert code == 0, err
    assert "warning" in err and "2.txt" in err and "not UTF-8" in err
    m = load_prepared(tmp_path / "o").manifest
    assert m["splits"]["train"]["documents"] == 1
    assert list(m["splits"]["train"]["skipped"]) == [str(src / "train" / "2.txt")]


def test_text_corpus_reads_txt_jsonl_and_parquet(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "corpus"
    src.mkdir()
    (src / "a.txt").write_text(book(1, 100), encoding="utf-8")
    (src / "b.jsonl").write_text("\n".join(json.dumps({"text": book(i, 50)}) for i in (2, 3)) + "\n",
                                 encoding="utf-8")
    pq.write_table(pa.table({"text": [book(4, 80)], "title": ["four"]}), src / "c.parquet")
    out = tmp_path / "o"
    code, err = run(["prepare", "text", "--source", str(src), "--tokenizer", "bpe:300", "--seq-len", "32",
                     "--docs", "train", "--out", str(out)], capsys)
    assert code == 0, err
    data = load_prepared(out)
    assert data.manifest["kind"] == "text" and data.manifest["splits"]["train"]["documents"] == 4
    assert data.docs("train")["title"] == ["a", "b:1", "b:2", "four"]
    assert data.manifest["views"]["packed"]["train"]["tokens"] == data.manifest["splits"]["train"]["tokens"] + 4


def test_compact_bpe_uses_every_row_and_splits_digits():
    from expspan_cli.data.tokenizer import train_bpe

    text = "the pin of Dara Vell is 4821. the key of Mo Sil is 907."
    tok = train_bpe(64, iter([text] * 20), compact=True)
    assert len(tok) <= 64 and tok.pad_token_id is None and tok.eos_token_id is not None
    ids = tok("the pin is 4821", add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(ids)[-4:] == ["4", "8", "2", "1"] and tok.decode(ids) == "the pin is 4821"
    # the alphabet is what the text uses: a character it never had is UNK, not a row of its own
    assert tok("Zé", add_special_tokens=False)["input_ids"][0] == tok.unk_token_id
    assert len(tok) < train_bpe(300, iter([text] * 20)).vocab_size


@pytest.mark.parametrize("case", ["missing", "empty", "split", "seq_len", "bpe", "bpe_compact", "hub",
                                  "not_prepared"])
def test_bad_input_is_one_line_and_exit_2(case, pg19_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "o"
    base = ["prepare", "pg19", "--tokenizer", "bpe:300", "--out", str(out)]
    argv, expect = {
        "missing": (base + ["--source", str(tmp_path / "nope")], "does not exist"),
        "empty": (base + ["--source", str(tmp_path)], "no PG-19 books"),
        "split": (base + ["--source", str(pg19_dir), "--splits", "train,dev"], "unknown PG-19 split 'dev'"),
        "seq_len": (base + ["--source", str(pg19_dir), "--seq-len", "1"], "Invalid value for '--seq-len'"),
        "bpe": (["prepare", "pg19", "--tokenizer", "bpe:lots", "--out", str(out), "--source", str(pg19_dir)],
                "bad tokenizer"),
        "bpe_compact": (["prepare", "pg19", "--tokenizer", "bpe:8:compact", "--out", str(out), "--source",
                         str(pg19_dir)], "bad tokenizer 'bpe:8:compact'"),
        "hub": (base, "--source"),
        "not_prepared": (base + ["--source", str(pg19_dir), "--force"], "is not prepared data"),
    }[case]
    if case == "hub":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the same failure as no network, without waiting on retries
        monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
        monkeypatch.setattr("datasets.config.HF_HUB_OFFLINE", True)
    if case == "not_prepared":
        out.mkdir()
        (out / "precious.txt").write_text("keep me")
    code, err = run(argv, capsys)
    assert code == 2
    assert expect in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
    if case == "not_prepared":
        assert (out / "precious.txt").read_text() == "keep me"
    else:
        assert not out.exists()


def test_check_tokenizer_refuses_another_vocabulary(pg19_dir, tmp_path, capsys):
    from expspan_cli.data.tokenizer import train_bpe

    out = tmp_path / "o"
    assert run(["prepare", "pg19", "--source", str(pg19_dir), "--tokenizer", "bpe:300", "--seq-len", "64",
                "--splits", "train", "--out", str(out)], capsys)[0] == 0
    other = train_bpe(260, iter(["only a little text"]))
    with pytest.raises(ExpspanError, match="tokenizer mismatch"):
        check_tokenizer(load_prepared(out), other)
    with pytest.raises(ExpspanError, match="not prepared data"):
        load_prepared(tmp_path)


def test_local_parquet_copy_of_the_hub_schema_with_max_books(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "pg19" / "data"
    src.mkdir(parents=True)
    for split, n in (("train", 5), ("validation", 3)):
        pq.write_table(pa.table({"short_book_title": [f"{split} book {i}" for i in range(n)],
                                 "publication_date": [1900 + i for i in range(n)],
                                 "url": [f"http://example/{i}" for i in range(n)],
                                 "text": [book(i, 120) for i in range(n)]}), src / f"{split}-00000-of-00001.parquet")
    out = tmp_path / "o"
    code, err = run(["prepare", "pg19", "--source", str(src.parent), "--tokenizer", "bpe:300", "--seq-len", "128",
                     "--splits", "train,validation", "--max-books", "2", "--out", str(out)], capsys)
    assert code == 0, err
    data = load_prepared(out)
    assert data.manifest["splits"]["train"]["documents"] == 2
    assert data.docs("validation")["title"] == ["validation book 0", "validation book 1"]
    code, err = run(["prepare", "pg19", "--source", str(src.parent), "--tokenizer", "bpe:300", "--splits", "test",
                     "--out", str(tmp_path / "o2")], capsys)
    assert code == 2 and "split 'test' not found" in err


def test_training_view_can_leave_out_the_padded_tail(tmp_path):
    from expspan_cli.data import load_prepared
    from expspan_cli.data.build import prepare
    from expspan_cli.data.synthetic import SyntheticSpec, synthetic_corpus

    out = tmp_path / "syn"
    prepare(synthetic_corpus(SyntheticSpec(seed=0, documents={"train": 5})), out=out, tokenizer="bpe:300",
            seq_len=256)
    data = load_prepared(out)
    pad = data.manifest["views"]["packed"]["train"]["pad_token_id"]
    padding = data.manifest["views"]["packed"]["train"]["padding"]
    assert padding > 0
    for seq_len in (256, 128):
        all_blocks = data.packed("train", seq_len)
        kept = data.packed("train", seq_len, drop_padded=True)
        assert len(kept) == len(all_blocks) - -(-padding // seq_len)
        assert all(pad not in row["input_ids"] for row in kept)  # bpe:N's pad id never occurs in text
        assert pad in all_blocks[len(all_blocks) - 1]["input_ids"]
