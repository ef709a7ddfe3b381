"""Model zoo: architectures match docs/conventions.md, forward shapes, initialisation, errors."""

import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from drive_runner.models.options import ModelConfig, ResNet18Config
from drive_runner.errors import ConfigError
from drive_runner.models import build_model, model_names

K = 10
MNIST = (1, 28, 28)
CIFAR = (3, 32, 32)

# name -> (input shape, prunable weights, prunable tensors), docs/conventions.md at 10 classes.
PRUNABLE = {
    "lenet300": (MNIST, 266_200, 3),
    "lenet5": (MNIST, 430_500, 4),
    "vgg11": (CIFAR, 9_222_848, 9),
    "vgg13": (CIFAR, 9_407_168, 11),
    "vgg16": (CIFAR, 14_715_584, 14),
    "vgg19": (CIFAR, 20_024_000, 17),
    "resnet20": (CIFAR, 270_896, 22),
    "resnet32": (CIFAR, 464_432, 34),
    "resnet44": (CIFAR, 657_968, 46),
    "resnet56": (CIFAR, 851_504, 58),
    "resnet18": (CIFAR, 11_164_352, 21),
    "alexnet": (CIFAR, 2_471_104, 6),
}


def prunable_weights(model):
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def build(name, shape, num_classes=K, **options):
    return build_model({"name": name, **options}, input_shape=shape, num_classes=num_classes)


def test_every_registered_model_is_covered():
    assert model_names() == sorted(PRUNABLE)


@pytest.mark.parametrize("name", sorted(PRUNABLE))
def test_prunable_weight_and_tensor_counts(name):
    shape, count, tensors = PRUNABLE[name]
    weights = prunable_weights(build(name, shape))
    assert sum(w.numel() for w in weights) == count
    assert len(weights) == tensors


FORWARD_CASES = [(name, PRUNABLE[name][0], {}) for name in sorted(PRUNABLE)] + [
    ("lenet300", (1, 8, 8), {}),
    ("resnet20", (1, 32, 32), {}),
    ("vgg11", (1, 32, 32), {}),
    ("resnet18", (3, 64, 64), {}),
    ("resnet18", (3, 224, 224), {"stem": "imagenet"}),
    ("resnet18", (1, 64, 64), {"stem": "imagenet"}),
]


@pytest.mark.parametrize("name,shape,options", FORWARD_CASES)
def test_forward_shape_and_classifier(name, shape, options):
    num_classes = 7
    model = build(name, shape, num_classes, **options)
    batch = 1 if shape[1] > 64 else 2
    assert model(torch.randn(batch, *shape)).shape == (batch, num_classes)
    classifier = model.get_submodule(model.classifier_name)
    last_linear = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert classifier is last_linear
    assert classifier.out_features == num_classes


def test_resnet18_stem_follows_image_size():
    def stem_kernel(shape, **options):
        return build("resnet18", shape, **options).conv1.kernel_size

    assert stem_kernel((3, 64, 64)) == (3, 3)
    assert stem_kernel((3, 96, 96)) == (7, 7)
    assert stem_kernel((3, 96, 96), stem="cifar") == (3, 3)
    assert stem_kernel((3, 32, 32), stem="imagenet") == (7, 7)


def test_resnet_module_names_for_reports():
    names = dict(build("resnet20", CIFAR).named_modules())
    expected = {"conv1", "bn1", "layer1.0.conv1", "layer1.0.bn2", "layer2.0.shortcut.0", "layer2.0.shortcut.1", "fc"}
    assert expected <= set(names)
    assert isinstance(names["layer2.0.shortcut.0"], nn.Conv2d) and names["layer2.0.shortcut.0"].kernel_size == (1, 1)
    assert isinstance(names["layer1.0.shortcut"], nn.Identity)


def test_accepts_omegaconf_configs():
    model = build_model(OmegaConf.structured(ResNet18Config(name="resnet18", stem="imagenet")), (3, 32, 32), K)
    assert model.conv1.kernel_size == (7, 7)
    model = build_model(OmegaConf.structured(ModelConfig(name="resnet18")), (3, 32, 32), K)
    assert model.conv1.kernel_size == (3, 3)


# --------------------------------------------------------------------------- initialisation
def big_convs(model):
    """Conv layers large enough for a tight std estimate."""
    return [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.weight.numel() >= 200_000]


def test_kaiming_fan_in_default():
    torch.manual_seed(0)
    model = build("vgg11", CIFAR)
    convs = big_convs(model)
    assert convs
    for conv in convs:
        fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)
        assert conv.weight.mean().abs().item() < 0.1 * math.sqrt(2 / fan_in)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            assert torch.all(module.bias == 0)
        if isinstance(module, nn.BatchNorm2d):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)


def test_kaiming_fan_out_changes_conv_std():
    torch.manual_seed(0)
    model = build("vgg11", CIFAR, conv_init="kaiming_fan_out")
    widening = [c for c in big_convs(model) if c.out_channels != c.in_channels]
    assert widening
    for conv in widening:
        fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
        assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)


def test_linear_kaiming_and_default():
    torch.manual_seed(0)
    kaiming = build("lenet300", MNIST).fc1
    default = build("lenet300", MNIST, linear_init="default").fc1
    bound = 1 / math.sqrt(784)
    assert kaiming.weight.std().item() == pytest.approx(math.sqrt(2 / 784), rel=0.05)
    assert kaiming.weight.abs().max().item() > bound
    assert default.weight.abs().max().item() <= bound
    assert default.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)  # U(-b, b)
    assert torch.any(default.bias != 0)  # PyTorch's default bias is kept as well


def test_resnet18_preset_init():
    """Fan-out convs beside the default classifier init: the setup behind docs/pruning-at-initialisation.md's collapse."""
    model = build("resnet18", CIFAR, conv_init="kaiming_fan_out", linear_init="default")
    assert model.fc.weight.abs().max().item() <= 1 / math.sqrt(512)
    conv = model.layer4[1].conv1
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (512 * 9)), rel=0.05)


def test_bn_uniform_gamma():
    model = build("resnet20", CIFAR, bn_init="uniform")
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    gammas = torch.cat([bn.weight.detach() for bn in bns])
    assert torch.all((gammas >= 0) & (gammas <= 1))
    assert not torch.all(gammas == 1)
    assert all(torch.all(bn.bias == 0) for bn in bns)


@pytest.mark.parametrize("key,value", [("conv_init", "lecun"), ("linear_init", "zeros"), ("bn_init", "ones")])
def test_unknown_init_option(key, value):
    with pytest.raises(ConfigError, match=f"model.{key}"):
        build("lenet5", MNIST, **{key: value})


@pytest.mark.parametrize(
    "name,shape,options", [("resnet20", CIFAR, {}), ("resnet18", (3, 64, 64), {"stem": "imagenet"})]
)
def test_seed_determines_weights(name, shape, options):
    def state(seed):
        torch.manual_seed(seed)
        return build(name, shape, **options).state_dict()

    first, again, other = state(1), state(1), state(2)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not all(torch.equal(first[key], other[key]) for key in first)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "name,minimum",
    [("lenet5", 16), ("vgg11", 16), ("vgg19", 16), ("alexnet", 29)],
)
def test_minimum_image_size(name, minimum):
    channels = 1 if name == "lenet5" else 3
    with pytest.raises(ConfigError) as error:
        build(name, (channels, minimum - 1, minimum - 1))
    assert str(error.value).startswith("dataset.image_size:")
    assert f"at least {minimum} px, got {minimum - 1}" in str(error.value)
    assert "set dataset.image_size=" in str(error.value)
    assert build(name, (channels, minimum, minimum))(torch.randn(2, channels, minimum, minimum)).shape == (2, K)


def test_lenet5_error_wording():
    with pytest.raises(ConfigError, match="lenet5 needs images of at least 16 px, got 8; set dataset.image_size=28"):
        build("lenet5", (1, 8, 8))


def test_unknown_model_names_the_allowed_ones():
    with pytest.raises(ConfigError) as error:
        build("resnet99", CIFAR)
    message = str(error.value)
    assert message.startswith("model: unknown model 'resnet99'")
    assert "allowed: alexnet, lenet300, lenet5, resnet18" in message


def test_unknown_resnet18_stem():
    with pytest.raises(ConfigError, match="model.stem"):
        build("resnet18", CIFAR, stem="tiny")


@pytest.mark.parametrize("init, std", [("xavier", lambda fan_in, fan_out: (2 / (fan_in + fan_out)) ** 0.5),
                                       ("normal", lambda fan_in, fan_out: 0.1),
                                       ("truncated_normal", lambda fan_in, fan_out: 0.088),
                                       ("kaiming", lambda fan_in, fan_out: (2 / fan_in) ** 0.5)])
def test_the_inits_of_the_snip_papers_table_3(init, std):
    """Issue 22: VS-X (xavier), RN (normal), TN (truncated_normal, N(0, 0.1) cut at 2 sd: sd 0.088) beside VS-H (kaiming)."""
    from drive_runner.cli.compose import compose_config
    from drive_runner.models import build_model

    torch.manual_seed(0)
    model = build_model(compose_config(["model=lenet300", f"model.linear_init={init}"]).model, (1, 28, 28), 10)
    for layer in (model.fc1, model.fc2):
        assert float(layer.weight.detach().std()) == pytest.approx(std(layer.in_features, layer.out_features), rel=0.05)
        assert not layer.bias.any()
    if init == "truncated_normal":
        assert float(model.fc1.weight.detach().abs().max()) <= 0.2
