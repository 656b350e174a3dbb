"""Model families shared by the built-in tasks: CNN, MLP, Vision Transformer, causal transformer LM.

Each is sized by arguments (width, depth, image size, sequence length) so the same family runs on
2 CPU cores at its default size and at GPU sizes by configuration.
"""

from __future__ import annotations

import torch
from torch import nn


class CNN(nn.Module):
    """``depth`` conv blocks (conv-BN-free, ReLU, 2x2 max-pool after each pair) then a 2-layer head."""

    def __init__(self, in_ch: int, num_classes: int, image_size: int, width: int = 32, depth: int = 2):
        super().__init__()
        layers, ch, size = [], in_ch, image_size
        for i in range(depth):
            out = width * (2 ** (i // 2))
            layers += [nn.Conv2d(ch, out, 3, padding=1), nn.ReLU()]
            ch = out
            if i % 2 == 1 and size >= 4:
                layers.append(nn.MaxPool2d(2))
                size //= 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(ch * size * size, 4 * width), nn.ReLU(),
                                  nn.Linear(4 * width, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


class MLP(nn.Module):
    def __init__(self, in_dim: int, num_classes: int, width: int = 128, depth: int = 2):
        super().__init__()
        layers, d = [nn.Flatten()], in_dim
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
        layers.append(nn.Linear(d, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def _encoder(dim: int, depth: int, heads: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)


class ViT(nn.Module):
    """Vision Transformer: patch embedding, learned positions, CLS token, pre-norm encoder."""

    def __init__(self, in_ch: int, num_classes: int, image_size: int, patch: int = 2,
                 dim: int = 64, depth: int = 2, heads: int = 4):
        super().__init__()
        n = (image_size // patch) ** 2
        self.embed = nn.Conv2d(in_ch, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        self.encoder = _encoder(dim, depth, heads)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        z = self.embed(x).flatten(2).transpose(1, 2)
        z = torch.cat([self.cls.expand(len(z), -1, -1), z], dim=1) + self.pos
        return self.head(self.norm(self.encoder(z)[:, 0]))


class TransformerLM(nn.Module):
    """Causal (decoder-only) transformer language model; returns logits [B, T, vocab]."""

    def __init__(self, vocab: int, seq_len: int, dim: int = 64, depth: int = 2, heads: int = 4):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(1, seq_len, dim) * 0.02)
        self.encoder = _encoder(dim, depth, heads)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(seq_len), persistent=False)

    def forward(self, x):
        t = x.shape[1]
        z = self.tok(x) + self.pos[:, :t]
        z = self.encoder(z, mask=self.mask[:t, :t], is_causal=True)
        return self.head(self.norm(z))
