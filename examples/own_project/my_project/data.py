"""scikit-learn's handwritten digits with Gaussian noise added: a dataset callable for drive-run."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset


def noisy_digits(noise: float = 0.3, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """(train, test) datasets of (1 x 8 x 8 image tensor, label): pixels scaled to [0, 1] plus N(0, noise^2)
    noise drawn once from `seed`; a stratified 80/20 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).div_(16).unsqueeze(1)
    images += noise * torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
    labels = torch.tensor(digits.target, dtype=torch.long)
    train, test = train_test_split(range(len(labels)), test_size=0.2, stratify=digits.target, random_state=seed)
    return TensorDataset(images[train], labels[train]), TensorDataset(images[test], labels[test])
