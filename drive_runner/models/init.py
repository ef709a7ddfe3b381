"""Weight initialisation (docs/conventions.md).

Pruning at initialisation ranks weights by scores that depend on their scale, so the init is part of
the method: Kaiming normal with ReLU gain for conv and linear weights, zero biases, BN gamma 1 and beta 0.
The options reproduce reference setups: open_lth's U[0,1] BN gammas, the ResNet-18 recipe with fan-out
convs beside PyTorch's default Linear init (whose small classifier weights matter: docs/pruning-at-initialisation.md,
magnitude), and the inits of the SNIP paper's Table 3 (xavier, normal, truncated_normal).
"""

from __future__ import annotations

from torch import nn

from drive_runner.errors import ConfigError

SCALED = ("xavier", "normal", "truncated_normal")  # the other inits of the SNIP paper's Table 3 (RN, TN, VS-X)
CONV_INITS = ("kaiming_fan_in", "kaiming_fan_out", *SCALED)
LINEAR_INITS = ("kaiming", "default", *SCALED)
BN_INITS = ("constant", "uniform")


def _check(key: str, value: str, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(key, f"unknown value {value!r}; allowed: {', '.join(allowed)}")


def _initialise(layer: nn.Module, how: str) -> None:
    """One layer's weights by `how` (kaiming_fan_in / kaiming_fan_out / kaiming / one of SCALED), its bias zeroed."""
    if how == "xavier":
        nn.init.xavier_normal_(layer.weight)
    elif how == "normal":
        nn.init.normal_(layer.weight, 0.0, 0.1)
    elif how == "truncated_normal":
        nn.init.trunc_normal_(layer.weight, 0.0, 0.1, -0.2, 0.2)
    else:
        mode = "fan_out" if how == "kaiming_fan_out" else "fan_in"
        nn.init.kaiming_normal_(layer.weight, mode=mode, nonlinearity="relu")
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def initialise(
    model: nn.Module,
    conv_init: str = "kaiming_fan_in",
    linear_init: str = "kaiming",
    bn_init: str = "constant",
) -> None:
    """Re-initialises every Conv2d, Linear and BatchNorm layer of `model` in place.

    `linear_init="default"` leaves Linear layers as PyTorch constructed them: U(+-1/sqrt(fan_in)).
    """
    _check("model.conv_init", conv_init, CONV_INITS)
    _check("model.linear_init", linear_init, LINEAR_INITS)
    _check("model.bn_init", bn_init, BN_INITS)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            _initialise(module, conv_init)
        elif isinstance(module, nn.Linear) and linear_init != "default":
            _initialise(module, linear_init)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if bn_init == "uniform":
                nn.init.uniform_(module.weight, 0.0, 1.0)
            else:
                nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
