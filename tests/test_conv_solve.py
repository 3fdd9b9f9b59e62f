"""The least-squares pieces under the layer-by-layer attack: the polyphase (stride-1) form of a strided
convolution, conjugate gradients, and a convolution's input solved back from its output."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlg_core.attacks.conv_solve import ConvEquations, conjugate_gradients, polyphase
from dlg_core.rank import ConvLayer


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(3, 1, 1), (5, 2, 2), (5, 1, 2), (4, 2, 1)])
def test_the_polyphase_form_is_the_same_convolution(kernel, stride, padding):
    torch.manual_seed(0)
    x, weight = torch.randn(1, 3, 12, 12), torch.randn(4, 3, kernel, kernel)
    form = polyphase(weight, stride, padding, 12)
    assert form is not None
    stride_one, pad = form
    assert stride_one.shape[1] == 3 * stride * stride
    expected = F.conv2d(x, weight, None, stride, padding)
    got = F.conv2d(F.pixel_unshuffle(x, stride), stride_one, None, 1, pad)
    assert torch.allclose(got, expected, atol=1e-5)


def test_no_polyphase_form_where_it_would_not_be_a_same_padded_convolution():
    assert polyphase(torch.randn(4, 3, 3, 3), 2, 0, 12) is None  # 'valid' padding: 5 outputs, not 6
    assert polyphase(torch.randn(4, 3, 3, 3), 2, 1, 11) is None  # odd side
    assert polyphase(torch.randn(4, 3, 3, 3), 2, 1, 12) is None  # it would pad one side only (LSQR takes it)


def test_conjugate_gradients_solves_a_positive_definite_system_and_says_when_it_did_not():
    torch.manual_seed(1)
    a = torch.randn(30, 20, dtype=torch.float64)
    right = torch.randn(20, dtype=torch.float64)
    x, converged = conjugate_gradients(lambda v: a.T @ (a @ v), right, tolerance=1e-10)
    assert converged and torch.allclose(a.T @ (a @ x), right, atol=1e-8)
    _, converged = conjugate_gradients(lambda v: a.T @ (a @ v), right, tolerance=1e-10, max_iter=2)
    assert not converged


@pytest.mark.parametrize(("kernel", "stride"), [(3, 1), (5, 2)])
def test_a_convolutions_input_comes_back_from_its_output(kernel, stride):
    # output channels = 8 x (input channels / stride^2): over twice the equations, the wide CNN's case
    torch.manual_seed(2)
    conv = torch.nn.Conv2d(3, 8 * stride * stride, kernel, stride=stride, padding=kernel // 2)
    weight = conv.weight.detach().double()
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    out = F.conv2d(x, weight, None, stride, kernel // 2)
    layer = ConvLayer("conv1", conv, "sigmoid", (3, 16, 16), tuple(out.shape[1:]))
    equations = ConvEquations(layer, weight, torch.ones_like(out), out, torch.zeros_like(weight), with_gradient=False)
    solved = equations.solve()
    assert solved is not None and float((solved - x).abs().max()) < 1e-3
