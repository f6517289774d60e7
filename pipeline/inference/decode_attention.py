"""The decode step's attention as one Triton kernel: grouped-query heads, each row's own length, split over the cache.

In a batched decode step every row attends from one new token over its cached keys/values. At batch 256 and
~1,300-token prompts a Mistral-7B step reads ~47 GB of keys/values (32 layers x 8 key/value heads) against
~15 GB of weights, so the step is bound by how fast attention streams the cache. SDPA needs a dense length mask
for that (its flash kernel takes none), so it runs its cuDNN or memory-efficient kernel, which read the cache to
its full width whatever each row's length: ~2.8 TB/s at batch 256 on an H200, where this kernel streams ~4.5 TB/s
of the keys/values the rows see (`python bench/bench_kernels.py`, each replayed from a CUDA graph).

`attend` is flash-decoding for grouped-query attention: one program per (row, key/value head, split of the
cache) loads that head's query group (Mistral: 4 query heads) once, streams only the row's visible keys/values
through an online softmax and writes the split's normalised output and log-sum-exp; when a batch is too small
to fill the GPU the cache is split so that more programs run, and a second kernel merges the splits by their
log-sum-exp.
Scores and the softmax are float32, the probabilities meet the values in the cache's dtype, as flash attention
does. `attention.length_masked_attention` is the SDPA form (what runs on CPU, and the tests' yardstick).
The kernel is plain Triton: under TRITON_INTERPRET=1 (set before triton is imported) it runs on CPU tensors.
"""

from __future__ import annotations

import functools

import triton
import triton.language as tl

BLOCK = 64  # keys per inner step
WARPS, STAGES = 4, 3
MIN_QUERY_ROWS = 16  # tl.dot needs 16 rows: the query group is padded up to it
PROGRAMS_PER_SM = 4  # splits are added until the grid has about this many programs per multiprocessor


@triton.jit
def _partial(Q, K, V, Positions, Out, Lse, scale,
             q_row, q_head, k_row, k_head, k_pos, v_row, v_head, v_pos, o_row, o_head, o_split,
             kv_heads, splits, split_width,
             GROUPS: tl.constexpr, GROUPS_PAD: tl.constexpr, DIM: tl.constexpr, BLOCK_N: tl.constexpr,
             IEEE: tl.constexpr):
    """One (row, key/value head, split): attention of the head's query group over keys start..end-1 of the split,
    end capped at the row's position + 1. Writes the normalised output (Out) and the log-sum-exp (Lse)."""
    row_head = tl.program_id(0)
    split = tl.program_id(1)
    row = (row_head // kv_heads).to(tl.int64)  # row x row stride can pass 2**31 elements on a large cache
    head = row_head % kv_heads
    start = split * split_width
    end = tl.minimum(start + split_width, tl.load(Positions + row) + 1)
    g = tl.arange(0, GROUPS_PAD)
    d = tl.arange(0, DIM)
    n = tl.arange(0, BLOCK_N)
    in_group = g < GROUPS
    q = tl.load(Q + row * q_row + head * q_head + g[:, None] * DIM + d[None, :], mask=in_group[:, None], other=0.0)
    best = tl.full([GROUPS_PAD], float("-inf"), tl.float32)
    total = tl.zeros([GROUPS_PAD], tl.float32)
    acc = tl.zeros([GROUPS_PAD, DIM], tl.float32)
    keys = K + row * k_row + head * k_head
    values = V + row * v_row + head * v_head
    for first in range(start, end, BLOCK_N):
        cols = first + n
        valid = cols < end
        k = tl.load(keys + cols[:, None] * k_pos + d[None, :], mask=valid[:, None], other=0.0)
        if IEEE:  # float32 caches: full-precision products, as SDPA computes them (not TF32)
            s = tl.dot(q, tl.trans(k), input_precision="ieee") * scale
        else:
            s = tl.dot(q, tl.trans(k)) * scale
        s = tl.where(valid[None, :], s, float("-inf"))
        new_best = tl.maximum(best, tl.max(s, 1))
        p = tl.exp(s - new_best[:, None])
        shrink = tl.exp(best - new_best)
        total = total * shrink + tl.sum(p, 1)
        v = tl.load(values + cols[:, None] * v_pos + d[None, :], mask=valid[:, None], other=0.0)
        if IEEE:
            acc = acc * shrink[:, None] + tl.dot(p, v, input_precision="ieee")
        else:
            acc = acc * shrink[:, None] + tl.dot(p.to(v.dtype), v)
        best = new_best
    seen = total > 0  # a split past the row's end saw nothing: output 0, weight 0 when merged
    out = acc / tl.where(seen, total, 1.0)[:, None]
    tl.store(Out + row * o_row + head * o_head + split * o_split + g[:, None] * DIM + d[None, :], out,
             mask=in_group[:, None])
    lse = tl.where(seen, best + tl.log(tl.where(seen, total, 1.0)), float("-inf"))
    tl.store(Lse + (row_head * splits + split) * GROUPS_PAD + g, lse, mask=in_group)


@triton.jit
def _merge(Partial, Lse, Result, splits,
           GROUPS: tl.constexpr, GROUPS_PAD: tl.constexpr, DIM: tl.constexpr, SPLITS_PAD: tl.constexpr):
    """One (row, key/value head): the splits' outputs (Partial [.., splits, GROUPS, DIM], contiguous) weighted by
    their share of the softmax, exp(lse - logsumexp(lse)), summed into Result [.., GROUPS, DIM]."""
    row_head = tl.program_id(0)
    s = tl.arange(0, SPLITS_PAD)
    g = tl.arange(0, GROUPS_PAD)
    d = tl.arange(0, DIM)
    in_group = g < GROUPS
    lse = tl.load(Lse + (row_head * splits + s[:, None]) * GROUPS_PAD + g[None, :],
                  mask=(s[:, None] < splits) & in_group[None, :], other=float("-inf"))
    best = tl.where(in_group, tl.max(lse, 0), 0.0)  # split 0 always saw key 0: finite for real query heads
    total = tl.sum(tl.exp(lse - best[None, :]), 0)
    acc = tl.zeros([GROUPS_PAD, DIM], tl.float32)
    for i in range(splits):
        weight = tl.exp(tl.load(Lse + (row_head * splits + i) * GROUPS_PAD + g, mask=in_group,
                                other=float("-inf")) - best) / total
        part = tl.load(Partial + ((row_head * splits + i) * GROUPS + g[:, None]) * DIM + d[None, :],
                       mask=in_group[:, None], other=0.0)
        acc += weight[:, None] * part
    tl.store(Result + (row_head * GROUPS + g[:, None]) * DIM + d[None, :], acc, mask=in_group[:, None])


@functools.cache
def _multiprocessors(index: int) -> int:
    import torch

    return torch.cuda.get_device_properties(index).multi_processor_count


def plan_splits(rows: int, kv_heads: int, width: int, multiprocessors: int) -> tuple[int, int]:
    """(splits, keys per split): one split when rows x heads already fill the GPU, else enough splits (whole
    blocks of keys each) to reach about PROGRAMS_PER_SM programs per multiprocessor."""
    block = BLOCK
    blocks = -(-width // block)
    want = -(-PROGRAMS_PER_SM * multiprocessors // (rows * kv_heads))
    per_split = -(-blocks // max(1, min(want, blocks)))
    return -(-blocks // per_split), per_split * block


def attend(q, keys, values, positions, scale: float, splits: int | None = None):
    """Decode attention. `q` [B, kv_heads, groups, dim] (each key/value head's query heads stacked), `keys`/`values`
    [B, kv_heads, width, dim] (the cache; dim contiguous), `positions` [B]: row b sees keys 0..positions[b].
    `splits` (default: planned from the GPU's size) divides the cache width among programs.
    Returns [B, kv_heads, groups, dim] in q's dtype."""
    import torch

    rows, kv_heads, groups, dim = q.shape
    width = keys.shape[2]
    if keys.stride(-1) != 1 or values.stride(-1) != 1:
        raise ValueError("decode attention needs the cache's last dimension contiguous")
    cuda = q.device.type == "cuda"
    if not cuda and not triton.knobs.runtime.interpret:
        raise ValueError("the Triton decode attention runs on CUDA (or under TRITON_INTERPRET=1); off CUDA use "
                         "attention.length_masked_attention")
    q = q.contiguous()
    if splits is None:
        splits, split_width = plan_splits(rows, kv_heads, width, _multiprocessors(q.device.index or 0) if cuda else 1)
    else:
        split_width = -(-width // (splits * BLOCK)) * BLOCK  # whole blocks of keys per split
        splits = -(-width // split_width)
    pad = max(MIN_QUERY_ROWS, triton.next_power_of_2(groups))
    direct = splits == 1  # one split: the normalised output is the answer, written in q's dtype
    out = torch.empty((rows, kv_heads, splits, groups, dim), device=q.device,
                      dtype=q.dtype if direct else torch.float32)
    lse = torch.empty((rows, kv_heads, splits, pad), device=q.device, dtype=torch.float32)
    _partial[(rows * kv_heads, splits)](
        q, keys, values, positions, out, lse, scale,
        q.stride(0), q.stride(1), keys.stride(0), keys.stride(1), keys.stride(2),
        values.stride(0), values.stride(1), values.stride(2), out.stride(0), out.stride(1), out.stride(2),
        kv_heads, splits, split_width, GROUPS=groups, GROUPS_PAD=pad, DIM=dim, BLOCK_N=BLOCK,
        IEEE=keys.dtype == torch.float32,
        **({"num_warps": WARPS, "num_stages": STAGES} if cuda else {}))
    if direct:
        return out[:, :, 0]
    result = torch.empty_like(q)
    _merge[(rows * kv_heads,)](out, lse, result, splits, GROUPS=groups, GROUPS_PAD=pad, DIM=dim,
                               SPLITS_PAD=triton.next_power_of_2(splits))
    return result

