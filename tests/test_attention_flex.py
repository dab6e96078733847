"""SE-Attn's FlexAttention kernel on CPU: forward outputs equal the reference (torch's flex has no CPU backward, so
gradients are checked in test_attention_gpu.py), and the BlockMask's tile lists, which only the compiled GPU kernel
reads, are exactly the tiles the reference's dense mask touches, with full tiles entirely admitted."""

import functools

import pytest
import torch

from expspan_cli.attention import SEParams, make_params, reference
from expspan_cli.attention.flex import se_block_mask, tile_sizes
from expspan_cli.attention import se
from expspan_cli.attention.retrieval import select_blocks
from expspan_cli.attention.se import se_attention
from expspan_cli.errors import ExpspanError

import support

pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
B, H, D = 2, 3, 8


qkv = functools.partial(support.qkv, batch=B, heads=H, dim=D)


@pytest.mark.parametrize("length", [64, 70])
@pytest.mark.parametrize("case", [dict(top_k=2), dict(top_k=7), dict(top_k=3, retrieval="shared"),
                                  dict(top_k=3, memory="random"), dict(top_k=2, memory="none")])
def test_flex_forward_equals_reference(length, case):
    params = SEParams(chunk_sizes=(16,), block_size=4, kernel="flex", **case)
    q, k, v = qkv(length)
    torch.manual_seed(2)
    out = se_attention(q, k, v, params, chunk_size=16)
    torch.manual_seed(2)
    ref = reference.se_reference(q, k, v, params, chunk_size=16)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def reference_mask(monkeypatch, q, k, v, params, chunk) -> torch.Tensor:
    seen = []
    original = reference.masked_attention
    monkeypatch.setattr(reference, "masked_attention", lambda q, k, v, mask, scale=None: (
        seen.append(mask), original(q, k, v, mask, scale))[1])
    reference.se_reference(q, k, v, params, chunk_size=chunk)
    return seen[0]


def listed(count, index, rows, cols) -> torch.Tensor:
    """[B, H, rows, cols] bool from per-row lists, asserting no tile is listed twice."""
    out = torch.zeros(B, H, rows, cols, dtype=torch.bool)
    for b in range(B):
        for h in range(H):
            for r in range(rows):
                entries = index[b, h, r, : count[b, h, r]].tolist()
                assert len(set(entries)) == len(entries)
                out[b, h, r, entries] = True
    return out


@pytest.mark.parametrize("chunk,block,tile", [(16, 4, 8), (16, 4, 16), (32, 8, 4), (32, 4, 128), (24, 4, 16)])
@pytest.mark.parametrize("top_k", [2, 5])
def test_block_mask_lists_exactly_the_tiles_the_reference_mask_touches(monkeypatch, chunk, block, tile, top_k):
    params = SEParams(chunk_sizes=(chunk,), block_size=block, top_k=top_k)
    length = 4 * chunk
    q, k, v = qkv(length, seed=top_k)
    idx, valid = select_blocks(q, k, v, params, chunk, None, D ** -0.5)
    mask = se_block_mask(idx, valid, length, chunk, block, tile)
    q_tile, kv_tile = tile_sizes(chunk, block, tile)
    assert mask.BLOCK_SIZE == (q_tile, kv_tile) and chunk % q_tile == 0 and chunk % kv_tile == 0
    dense = reference_mask(monkeypatch, q, k, v, params, chunk)  # [B, H, L, L]
    pos = torch.arange(length)
    mod = mask.mask_mod(torch.arange(B)[:, None, None, None], torch.arange(H)[None, :, None, None],
                        pos[None, None, :, None], pos[None, None, None, :])
    assert torch.equal(mod, dense)
    tiles = dense.view(B, H, length // q_tile, q_tile, length // kv_tile, kv_tile)
    touched, whole = tiles.any(-1).any(-2), tiles.all(-1).all(-2)
    n_q, n_kv = length // q_tile, length // kv_tile
    full = listed(mask.full_kv_num_blocks, mask.full_kv_indices, n_q, n_kv)
    part = listed(mask.kv_num_blocks, mask.kv_indices, n_q, n_kv)
    assert not (full & part).any()
    assert torch.equal(full | part, touched)
    assert not (full & ~whole).any()
    # The transposed lists (the backward's) are the same tiles seen from the key side.
    assert torch.equal(listed(mask.q_num_blocks, mask.q_indices, n_kv, n_q), part.transpose(-1, -2))
    assert torch.equal(listed(mask.full_q_num_blocks, mask.full_q_indices, n_kv, n_q), full.transpose(-1, -2))


def test_block_mask_size_grows_linearly_with_length():
    params = SEParams(chunk_sizes=(256,), block_size=32, top_k=4)
    sizes = []
    for length in (2048, 4096):
        q, k, v = (torch.randn(1, 1, length, 8) for _ in range(3))
        idx, valid = select_blocks(q, k, v, params, 256, None, 8 ** -0.5)
        mask = se_block_mask(idx, valid, length, 256, 32)
        sizes.append(sum(t.numel() for t in (mask.kv_indices, mask.full_kv_indices)))
    assert sizes[1] == 2 * sizes[0]


def test_flex_cannot_train_on_cpu_and_says_so():
    params = SEParams(chunk_sizes=(16,), block_size=4, top_k=2, kernel="flex")
    q, k, v = (t.requires_grad_() for t in qkv(64))
    with pytest.raises(ExpspanError, match="no CPU backward"):
        se_attention(q, k, v, params, chunk_size=16)


def test_unknown_kernel_is_a_one_line_error():
    with pytest.raises(ExpspanError, match="kernel must be one of lse_merge, flex"):
        make_params("se", kernel="triton")


def test_padded_input_falls_back_to_the_masked_path(monkeypatch):
    params = SEParams(chunk_sizes=(16,), block_size=4, top_k=2, kernel="flex")
    q, k, v = qkv(64)
    padding = torch.ones(B, 64, dtype=torch.bool)
    padding[0, 50:] = False
    monkeypatch.setattr(se, "flex_chunk_attention", None)  # calling it would fail
    out = se_attention(q, k, v, params, key_padding=padding, chunk_size=16)
    ref = reference.se_reference(q, k, v, params, key_padding=padding, chunk_size=16)
    torch.testing.assert_close(out[1], ref[1], atol=1e-5, rtol=1e-5)


def test_kv_list_shapes_do_not_depend_on_what_was_retrieved():
    """The compiled kernel is specialised on index shapes: different retrievals must not change them."""
    params = SEParams(chunk_sizes=(32,), block_size=4, top_k=3)
    shapes = set()
    for seed in range(4):
        q, k, v = qkv(128, seed=seed)
        idx, valid = select_blocks(q, k, v, params, 32, None, D ** -0.5)
        mask = se_block_mask(idx, valid, 128, 32, 4, tile=16)
        shapes.add((mask.kv_indices.shape, mask.full_kv_indices.shape))
    assert len(shapes) == 1
