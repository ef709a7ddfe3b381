"""What drive-runner reads from any model, its own or a user's: the output layer (kept dense by IMP's presets,
never narrowed by PruneTrain) and whether NeuroFlux can split it into units."""

from __future__ import annotations

from torch import nn

LAYERS = (nn.Conv2d, nn.Linear)


def output_layer(model: nn.Module) -> str | None:
    """The name of the layer that produces the class scores: the model's `classifier_name` when it has one,
    else its last Conv2d or Linear module (the usual place for a classifier; None when there is none)."""
    named = getattr(model, "classifier_name", None)
    if named is not None:
        return named
    layers = [name for name, module in model.named_modules() if isinstance(module, LAYERS)]
    return layers[-1] if layers else None


def splits_into_units(model: nn.Module) -> bool:
    """NeuroFlux trains a model unit by unit: it needs `units()` -> (list of modules in forward order, head)."""
    return callable(getattr(model, "units", None))
