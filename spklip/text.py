"""The text tower: a small CLIP-style Transformer with residual TextAdapters.

Follows the authors' public code (``clip/model.py``): token embedding plus a
learned positional embedding, ``text.layers`` pre-LN residual attention blocks
with a QuickGELU MLP, each followed by a residual TextAdapter, a final
LayerNorm, one pooled token and a linear ``text_projection`` into the joint
space. ``text.style`` picks the pooling:

``"clip"`` (public code)
    causal attention; the feature at the first ``<eot>`` is pooled.
``"bert"`` (the paper's wording)
    bidirectional attention; the feature at ``<sot>`` (position 0) is pooled,
    as BERT pools its ``[CLS]`` token.

In both styles ``<pad>`` keys are masked out. Every parameter lives in a leaf
module (``nn.Embedding``, :class:`PositionalEmbedding`, ``nn.MultiheadAttention``,
``nn.Linear``, ``nn.LayerNorm``, :class:`TextProjection`), so the energy
counter's forward hooks see every weight that is read.

Inputs/Outputs: ``tokens`` ``[B, L]`` int64 with ``L <= context_length`` →
``[B, embed_dim]`` (not normalised).
"""

from __future__ import annotations

import torch
from torch import nn

from spklip_energy.errors import ConfigError

from .config import TextConfig
from .tokenizer import EOT_ID, PAD_ID


class QuickGELU(nn.Module):
    """CLIP's GELU approximation, ``x * sigmoid(1.702 x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class PositionalEmbedding(nn.Module):
    """Learned positions: ``x + weight[:L]`` for ``x`` of shape ``[B, L, width]``."""

    def __init__(self, context_length: int, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(context_length, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight[: x.shape[1]]


class TextProjection(nn.Module):
    """Projection into the joint space: ``x @ weight`` with ``weight`` ``[width, embed_dim]``."""

    def __init__(self, width: int, embed_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(width, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight


class TextAdapter(nn.Module):
    """Residual bottleneck ``x + up(GELU(down(x)))``; ``up`` starts at zero, so it starts as identity."""

    def __init__(self, width: int, adapter_width: int) -> None:
        super().__init__()
        self.down = nn.Linear(width, adapter_width)
        self.act = nn.GELU()
        self.up = nn.Linear(adapter_width, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


class ResidualAttentionBlock(nn.Module):
    """Pre-LN block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``, then the adapter (if any)."""

    def __init__(self, width: int, heads: int, adapter_width: int | None) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, 4 * width))
        self.mlp.add_module("gelu", QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(4 * width, width))
        self.adapter = TextAdapter(width, adapter_width) if adapter_width else None

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None, key_padding_mask: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, key_padding_mask=key_padding_mask, attn_mask=attn_mask, need_weights=False)[0]
        x = x + self.mlp(self.ln_2(x))
        if self.adapter is not None:
            x = self.adapter(x)
        return x


class TextEncoder(nn.Module):
    """Tokens ``[B, L]`` → text embeddings ``[B, embed_dim]``.

    Parameters
    ----------
    cfg:
        the text tower's :class:`~spklip.config.TextConfig`.
    embed_dim:
        size of the joint spike-text space.
    eot_id, pad_id:
        the tokenizer's ``<eot>`` and ``<pad>`` ids (those of
        :class:`~spklip.tokenizer.SpikeTextTokenizer` by default).
    """

    def __init__(self, cfg: TextConfig, embed_dim: int, eot_id: int = EOT_ID, pad_id: int = PAD_ID) -> None:
        super().__init__()
        if cfg.style not in ("clip", "bert"):
            raise ConfigError(f"text.style must be 'clip' or 'bert', got {cfg.style!r}")
        self.style = cfg.style
        self.context_length = cfg.context_length
        self.vocab_size = cfg.vocab_size
        self.width = cfg.width
        self.eot_id = eot_id
        self.pad_id = pad_id
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.width)
        self.positional_embedding = PositionalEmbedding(cfg.context_length, cfg.width)
        adapter_width = cfg.adapter_width if cfg.adapter else None
        self.blocks = nn.ModuleList(
            ResidualAttentionBlock(cfg.width, cfg.heads, adapter_width) for _ in range(cfg.layers)
        )
        self.ln_final = nn.LayerNorm(cfg.width)
        self.text_projection = TextProjection(cfg.width, embed_dim)
        self._init_parameters(cfg.layers)

    def _init_parameters(self, layers: int) -> None:
        """CLIP's initialisation (``clip/model.py`` ``initialize_parameters``)."""
        width = self.width
        attn_std = width**-0.5
        proj_std = width**-0.5 * (2 * layers) ** -0.5
        fc_std = (2 * width) ** -0.5
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding.weight, std=0.01)
        for block in self.blocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection.weight, std=width**-0.5)

    def _check(self, tokens: torch.Tensor) -> None:
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2:
            shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise ConfigError(f"text tokens must be a [batch, length] tensor, found {shape}")
        if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
            raise ConfigError(f"text tokens must be integer ids, found dtype {tokens.dtype}")
        if tokens.shape[1] > self.context_length:
            raise ConfigError(
                f"text tokens have length {tokens.shape[1]}, expected at most context_length={self.context_length}"
            )
        if torch.jit.is_tracing() or torch.compiler.is_compiling() or tokens.numel() == 0:
            return
        lo, hi = int(tokens.min()), int(tokens.max())
        if lo < 0 or hi >= self.vocab_size:
            raise ConfigError(f"text token ids must lie in [0, {self.vocab_size}), found range [{lo}, {hi}]")

    def hidden_states(self, tokens: torch.Tensor) -> torch.Tensor:
        """Per-token features after ``ln_final``: ``[B, L]`` → ``[B, L, width]``."""
        self._check(tokens)
        length = tokens.shape[1]
        x = self.positional_embedding(self.token_embedding(tokens))
        # <pad> keys are ignored; position 0 always stays visible, so an all-pad row
        # cannot leave a query with nothing to attend to (which would give NaN)
        key_padding_mask = tokens == self.pad_id
        key_padding_mask[:, 0] = False
        attn_mask = None
        if self.style == "clip":
            attn_mask = torch.ones(length, length, dtype=torch.bool, device=tokens.device).triu(1)
        for block in self.blocks:
            x = block(x, attn_mask, key_padding_mask)
        return self.ln_final(x)

    def pool_positions(self, tokens: torch.Tensor) -> torch.Tensor:
        """Index ``[B]`` of the pooled token: the first ``<eot>`` ("clip") or 0 ("bert").

        A "clip" row without ``<eot>`` pools its last non-pad token.
        """
        if self.style == "bert":
            return torch.zeros(tokens.shape[0], dtype=torch.long, device=tokens.device)
        is_eot = tokens == self.eot_id
        first_eot = is_eot.long().argmax(dim=1)
        last_real = ((tokens != self.pad_id).long().sum(dim=1) - 1).clamp(min=0)
        return torch.where(is_eot.any(dim=1), first_eot, last_real)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.hidden_states(tokens)
        pooled = x[torch.arange(x.shape[0], device=x.device), self.pool_positions(tokens)]
        return self.text_projection(pooled)


__all__ = [
    "PositionalEmbedding",
    "QuickGELU",
    "ResidualAttentionBlock",
    "TextAdapter",
    "TextEncoder",
    "TextProjection",
]
