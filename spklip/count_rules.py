"""Counting rules for this project's own SPKLIP layers (registered on import).

Each rule counts only the module's own arithmetic (``covers_children=False``);
its child layers are counted by their own rules.
"""

from __future__ import annotations

from energy.counts import Counts
from energy.rules import (
    CallContext,
    base_counts,
    elementwise_free_rule,
    first_tensor,
    register_rule,
)

from .starnet import AttentionPool2d, BlockPosition
from .text import PositionalEmbedding, QuickGELU, TextProjection


@register_rule(AttentionPool2d, covers_children=False)
def attention_pool_rule(module: AttentionPool2d, inputs, output, ctx: CallContext) -> Counts:
    """The pool's own work: the mean token (one add per feature element) and the
    positional-embedding addition; attention and projection are counted by their rules."""
    x = inputs[0]
    c = Counts()
    n, ch, h, w = x.shape
    c.macs = n * ch * h * w + n * ch * (h * w + 1)
    c.weight_reads = module.positional_embedding.numel()
    c.weight_read_bytes = c.weight_reads * module.positional_embedding.element_size()
    c.weight_buffer = module.positional_embedding.numel()
    c.act_reads = x.numel()
    c.act_read_bytes = x.numel() * x.element_size()
    out = first_tensor(output)
    if out is not None:
        c.act_buffer = max(ch * (h * w + 1), out[0].numel() if out.dim() > 1 else out.numel())
    return c


@register_rule(BlockPosition)
def block_position_rule(module: BlockPosition, inputs, output, ctx: CallContext) -> Counts:
    """One addition per element of the block sequence."""
    c, x, out = base_counts(module, inputs, output, ctx, sample_dims=1)
    c.macs = x.numel()
    return c


@register_rule(PositionalEmbedding)
def positional_embedding_rule(module: PositionalEmbedding, inputs, output, ctx: CallContext) -> Counts:
    """One addition per token feature; reads the positions used."""
    c, x, out = base_counts(module, inputs, output, ctx, sample_dims=2)
    c.macs = x.numel()
    used = x.shape[-2] * x.shape[-1]
    c.weight_reads = used
    c.weight_read_bytes = used * module.weight.element_size()
    return c


@register_rule(TextProjection)
def text_projection_rule(module: TextProjection, inputs, output, ctx: CallContext) -> Counts:
    """A matrix product: rows x width x embed_dim MACs."""
    c, x, out = base_counts(module, inputs, output, ctx, sample_dims=1)
    c.macs = out.numel() * module.weight.shape[0]
    return c


register_rule(QuickGELU)(elementwise_free_rule)
