import pytest
import torch

from trainables.nets import BasicBlock, ResNet20, ShortcutA, count_parameters, resnet20


def test_resnet20_has_the_papers_parameter_count():
    # He et al. 2016, CIFAR ResNet-20 with option-A shortcuts: 0.27M parameters.
    net = resnet20(num_classes=10)
    assert count_parameters(net) == 269_722
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) + len(linears) == 20  # 19 convolutions + 1 linear layer
    assert sum(isinstance(m, BasicBlock) for m in net.modules()) == 9
    assert [b.conv2.out_channels for b in net.layers] == [16] * 3 + [32] * 3 + [64] * 3


def test_width_and_input_channels():
    wide = resnet20(num_classes=10, in_channels=1, width=2)
    assert [b.conv2.out_channels for b in wide.layers] == [32] * 3 + [64] * 3 + [128] * 3
    assert wide.conv1.in_channels == 1
    # conv weights scale with width², so a width-2 net has about 4x the parameters
    ratio = count_parameters(wide) / count_parameters(resnet20(num_classes=10, in_channels=1))
    assert 3.9 < ratio < 4.0


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (2, 1, 8, 8), (2, 3, 17, 23)])
def test_forward_shapes(shape):
    net = resnet20(num_classes=7, in_channels=shape[1])
    out = net(torch.randn(*shape))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    net = resnet20(num_classes=10, in_channels=1)
    loss = torch.nn.functional.cross_entropy(net(torch.randn(4, 1, 8, 8)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_option_a_shortcut_subsamples_and_zero_pads():
    x = torch.arange(2 * 16 * 4 * 4, dtype=torch.float32).view(2, 16, 4, 4)
    out = ShortcutA(16, 32, stride=2)(x)
    assert out.shape == (2, 32, 2, 2)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert out[:, :8].abs().sum() == 0 and out[:, 24:].abs().sum() == 0


def test_init_is_seeded():
    torch.manual_seed(3)
    a = resnet20()
    torch.manual_seed(3)
    b = resnet20()
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_classes": 1}, "num_classes"),
        ({"in_channels": 0}, "in_channels"),
        ({"width": 0}, "width"),
        ({"width": 1.5}, "width"),
        ({"width": True}, "width"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResNet20(**kwargs)
