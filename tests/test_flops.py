"""The documented FLOP counter: multiply-accumulates of conv and linear layers plus bias adds."""

import torch
from torch import nn

from drive_runner.models import build_model
from drive_runner.train.flops import count_flops, total_flops


def test_linear_network_flops_equal_weights_plus_biases():
    model = build_model({"name": "lenet300"}, input_shape=(1, 8, 8), num_classes=10)
    dense, sparse = total_flops(model, (1, 8, 8))
    assert dense == sparse == 64 * 300 + 300 * 100 + 100 * 10 + (300 + 100 + 10)


def test_conv_flops_scale_with_output_positions_and_nonzero_weights():
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    model = nn.Sequential(conv)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 1.0
        conv.weight[1, 2, 1, 1] = 1.0
    (layer,) = count_flops(model, (3, 5, 5))
    assert layer.dense == 4 * 3 * 3 * 3 * 25
    assert layer.sparse == 2 * 25


def test_vgg16_dense_flops_match_the_known_figure():
    model = build_model({"name": "vgg16"}, input_shape=(3, 32, 32), num_classes=10)
    dense, _ = total_flops(model, (3, 32, 32))
    # 313.2 M multiply-accumulates in the convs and classifier (the usual "0.31 GFLOPs" for CIFAR VGG-16).
    assert 313_000_000 < dense < 314_000_000
