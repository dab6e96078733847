"""SE-Attn's chunk attention as ONE FlexAttention call with a data-dependent BlockMask (the second GPU candidate).

After retrieval (se.py's `select_blocks`), each query tile of chunk t attends to its own chunk causally plus the key
tiles holding chunk t's retrieved memory blocks. The BlockMask lists those tiles directly (kv lists and their
transpose for the backward), built from the [B, H, T, k] retrieval indices by sorting, never from a dense
query-by-key table: the kv lists hold O(L/tile * (k + M/tile)) indices per head, the transposed ones as many as
the query tiles reading each key tile (up to L/tile where every chunk retrieves the same block, an attention
sink). The exact token-level rule is the mask_mod (own chunk causal, or the key's memory block retrieved by the
query's chunk), applied only on partially admitted tiles; a tile wider than a memory block is partial unless every
block in it was retrieved, so at S < tile the kernel computes up to tile/S times the retrieved keys (the price of
kernel tiles: Hopper's default flex backward tiles are 128 wide).

On CUDA the call is compiled (torch.compile of flex_attention). On CPU it is not: torch 2.13's
flex_attention refuses CPU inputs that need gradients ("FlexAttention does not support backward on CPU",
`_validate_device`), its compiled CPU template asserts that the kv lists span every key tile ("KV seqlen must be
smaller than the block_mask size", inductor's flex_cpu.py), and its eager forward materializes the L x L scores and
reads only the mask_mod. So CPU runs check outputs; the tile lists are checked against the reference's mask.
"""

from __future__ import annotations

import math
from functools import cache

import torch
from torch.nn.attention.flex_attention import BlockMask, flex_attention

from expspan_cli.errors import ExpspanError

TILE = 128  # query and key tile of the BlockMask; a multiple of the flex kernels' default tiles on A100 and H100


def tile_sizes(chunk: int, block_size: int, tile: int = TILE) -> tuple[int, int]:
    """(query tile, key tile): both divide the chunk so no tile straddles two chunks; the key tile also divides or
    is divided by the memory block, so a block covers whole tiles or sits inside one."""
    q_tile = math.gcd(chunk, tile)
    kv_tile = q_tile if q_tile % block_size == 0 or block_size % q_tile == 0 else math.gcd(q_tile, block_size)
    return q_tile, kv_tile


def _compact(index: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move the kept entries of each row to its front (in order): (count [...], index [..., W]) as int32."""
    width = index.shape[-1]
    slot = torch.where(keep, torch.arange(width, device=index.device), width)
    order = slot.sort(-1).indices
    return keep.sum(-1).int(), index.gather(-1, order).int()


def _transpose(count: torch.Tensor, index: torch.Tensor, n_cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row column lists [B, H, R] / [B, H, R, W] -> per-column row lists [B, H, C] / [B, H, C, W'] (rows
    ascending), by one sort of the listed entries; W' is the longest column's count."""
    batch, heads, rows, width = index.shape
    listed = torch.arange(width, device=index.device) < count[..., None]
    bh = torch.arange(batch * heads, device=index.device).view(batch, heads, 1, 1)
    row = torch.arange(rows, device=index.device).view(1, 1, rows, 1)
    key = ((bh * n_cols + index.long()) * rows + row)[listed].sort().values
    col, row_of = key // rows, key % rows
    counts = torch.bincount(col, minlength=batch * heads * n_cols)
    rank = torch.arange(key.numel(), device=key.device) - (counts.cumsum(0) - counts)[col]
    out = torch.zeros(batch * heads * n_cols, max(int(counts.max()) if key.numel() else 0, 1), dtype=torch.int32,
                      device=index.device)
    out[col, rank] = row_of.int()
    return counts.view(batch, heads, n_cols).int(), out.view(batch, heads, n_cols, -1)


def se_block_mask(idx: torch.Tensor, valid: torch.Tensor, length: int, chunk: int, block_size: int,
                  tile: int = TILE) -> BlockMask:
    """The BlockMask of paper-mode SE-Attn over a padded length (a multiple of chunk).

    idx/valid [B, H, T, k]: the memory blocks each chunk retrieved (strictly before the chunk's start)."""
    batch, heads, n_chunks, _ = idx.shape
    dev = idx.device
    q_tile, kv_tile = tile_sizes(chunk, block_size, tile)
    n_q, n_kv, n_mem = length // q_tile, length // kv_tile, length // block_size
    # Which memory blocks each chunk retrieved, and how many retrieved tokens each key tile holds.
    hit = torch.zeros(batch, heads, n_chunks, n_mem + 1, dtype=torch.bool, device=dev)
    hit.scatter_(3, torch.where(valid, idx, n_mem), True)
    hit = hit[..., :n_mem]
    if block_size <= kv_tile:
        covered = hit.view(batch, heads, n_chunks, n_kv, kv_tile // block_size).sum(-1) * block_size
    else:
        covered = hit.repeat_interleave(block_size // kv_tile, dim=-1) * kv_tile
    tiles = torch.arange(n_kv, device=dev).expand(batch, heads, n_chunks, n_kv)
    per_q = chunk // q_tile  # query tiles per chunk: each takes its chunk's retrieved tiles

    # A fixed width (k slots, each in one tile or spread over S/tile tiles), so the compiled kernel sees the same
    # index shapes whatever was retrieved.
    width = min(n_kv, idx.shape[-1] * max(1, block_size // kv_tile))

    def retrieved(keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        count, index = _compact(tiles, keep)
        return count.repeat_interleave(per_q, dim=2), index[..., :width].repeat_interleave(per_q, dim=2)

    r_full_n, r_full = retrieved(covered == kv_tile)
    r_part_n, r_part = retrieved((covered > 0) & (covered < kv_tile))
    # Own chunk: key tiles from the chunk's start up to the query tile are full, those inside the query tile partial.
    q_start = torch.arange(n_q, device=dev) * q_tile
    first_own, first_diag = (q_start - q_start % chunk) // kv_tile, q_start // kv_tile
    own_full = first_own[:, None] + torch.arange(chunk // kv_tile, device=dev)
    own_full_n = first_diag - first_own
    own_diag = first_diag[:, None] + torch.arange(q_tile // kv_tile, device=dev)

    def merged(r_n, r_idx, o_n, o_idx):
        width = r_idx.shape[-1]
        index = torch.cat([r_idx, o_idx.int().expand(batch, heads, -1, -1)], dim=-1)
        slots = torch.arange(index.shape[-1], device=dev)
        keep = (slots < r_n[..., None]) | ((slots >= width) & (slots < width + o_n.view(1, 1, -1, 1)))
        return _compact(index, keep)

    full_n, full_idx = merged(r_full_n, r_full, own_full_n, own_full)
    part_n, part_idx = merged(r_part_n, r_part, torch.full_like(own_full_n, q_tile // kv_tile), own_diag)
    q_n, q_idx = _transpose(part_n, part_idx, n_kv)
    full_q_n, full_q_idx = _transpose(full_n, full_idx, n_kv)

    def mask_mod(b, h, q_pos, kv_pos):
        chunk_of_q = q_pos // chunk
        own = (kv_pos // chunk == chunk_of_q) & (kv_pos <= q_pos)
        return own | hit[b, h, chunk_of_q, kv_pos // block_size]

    return BlockMask(seq_lengths=(length, length), kv_num_blocks=part_n, kv_indices=part_idx,
                     full_kv_num_blocks=full_n, full_kv_indices=full_idx, q_num_blocks=q_n, q_indices=q_idx,
                     full_q_num_blocks=full_q_n, full_q_indices=full_q_idx, BLOCK_SIZE=(q_tile, kv_tile),
                     mask_mod=mask_mod)


@cache
def _compiled_flex():
    # Automatic dynamic shapes: the transposed lists' width follows the data, and a second width makes that dimension
    # symbolic after one recompile instead of compiling per width (and falling back to eager at the limit).
    return torch.compile(flex_attention)


def flex_chunk_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, idx: torch.Tensor, valid: torch.Tensor,
                         chunk: int, block_size: int, scale: float, tile: int = TILE) -> torch.Tensor:
    """q/k/v [B, H, Lp, D] (Lp a multiple of chunk, k/v expanded to the query heads) -> [B, H, Lp, D]."""
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    if q.device.type == "cpu" and needs_grad:
        raise ExpspanError("se: kernel 'flex' cannot train on CPU: torch's FlexAttention has no CPU backward",
                           hint="use the se kernel 'lse_merge' on CPU; 'flex' is a CUDA kernel")
    mask = se_block_mask(idx, valid, q.shape[2], chunk, block_size, tile)
    run = _compiled_flex() if q.is_cuda else flex_attention
    return run(q, k, v, block_mask=mask, scale=scale)
