"""Least squares for a convolution's input: R-GAP's forward and weight-gradient equations, never as a matrix.

A convolution's matrix at 128 px would have about 10^10 entries; the operator and its transpose are a
convolution and its transpose instead (torch):

- forward rows alone, at least twice the unknowns (both of the wide CNN's layers): conjugate gradients on the
  normal equations, in torch. A stride-s convolution is first rewritten as a stride-1 one on the input's
  s x s polyphase components (``pixel_unshuffle``; ``polyphase``), and both run in channels-last layout:
  together 2-3x faster per iteration than the strided convolution and its input gradient (measured: 0.75
  against 1.8 ms for the wide CNN's first layer at 128 px, one thread). No preconditioner: the normal
  matrix is well conditioned here (per frequency, with circular padding, condition numbers 42 and 60 on the
  wide CNN at 128 px), and the zero padding's borders are what is left; a per-frequency (Fourier) inverse
  cut the iterations from 27 + 37 to 19 + 27 (tolerance 3e-5) but cost more than it saved (its set-up alone
  0.07-0.13 s at 128 px; a per-pixel block-Jacobi one saved 5%), and scipy's ``cg`` on flat numpy vectors
  would copy the channels-last tensors at every step;
- otherwise (with the weight-gradient rows, or a shape the polyphase form does not fit): LSQR (scipy),
  unpreconditioned.

Both run in float32: the shared gradient is float32, and 60 dB needs a relative error of about 1e-3.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import LinearOperator, lsqr

from ..rank import ConvLayer

TOLERANCE = 3e-6  # relative residual of the normal equations; wide CNN, tune photos, 32-128 px: min 80 dB (1e-5: 69,
# 3e-5: 59), for about 5% more time a run (measured)
LSQR_TOLERANCE = 1e-6  # atol and btol; LeNet at 32 px, tune photos: median 48.7 dB (3e-6: 39.5, 3e-5: 25.7, conv2
# ~1% off), 2.4 s (1.8, 0.7); cnn unchanged (its conv3 is fitted), 10% slower
MAX_ITER = 400
SOLVE_DTYPE = torch.float32
CHANNELS_LAST = torch.channels_last


def polyphase(weight: torch.Tensor, stride: int, padding: int, size: int) -> tuple[torch.Tensor, int] | None:
    """(kernel, padding) of the stride-1 convolution on ``pixel_unshuffle(x, stride)`` that equals this one on
    x (a square input of side ``size``), or None where there is none of that form (the output is not
    size / stride, or the padding it needs is not the same on both sides).

    Tap a of the kernel reads the input's row s*i + a - p, i.e. polyphase row u of block row i + q, where
    (q, u) = divmod(a - p, s).
    """
    c_out, c_in, k, _ = weight.shape
    s = stride
    shifts = [divmod(a - padding, s) for a in range(k)]
    low, high = min(q for q, _ in shifts), max(q for q, _ in shifts)
    if size % s or (size + 2 * padding - k) // s + 1 != size // s or -low != high:
        return None
    kernel = weight.new_zeros(c_out, c_in, s, s, high - low + 1, high - low + 1)
    for a, (q, u) in enumerate(shifts):
        for b, (r, v) in enumerate(shifts):
            kernel[:, :, u, v, q - low, r - low] = weight[:, :, a, b]
    return kernel.reshape(c_out, c_in * s * s, high - low + 1, high - low + 1), high


def conjugate_gradients(normal: Callable[[torch.Tensor], torch.Tensor], right: torch.Tensor,
                        tolerance: float = TOLERANCE, max_iter: int = MAX_ITER) -> tuple[torch.Tensor, bool]:
    """x with normal(x) = right (symmetric positive definite), from 0, until the residual is below
    ``tolerance`` times ``right``'s norm; and whether it got there. Keeps ``right``'s memory layout."""
    x, residual = torch.zeros_like(right), right.clone()
    direction, rr = residual.clone(), float(residual.pow(2).sum())
    stop = tolerance**2 * rr
    for _ in range(max_iter):
        product = normal(direction)
        alpha = rr / float((direction * product).sum())
        x.add_(direction, alpha=alpha)
        residual.sub_(product, alpha=alpha)
        rr, previous = float(residual.pow(2).sum()), rr
        if rr <= stop:
            return x, True
        direction.mul_(rr / previous).add_(residual)
    return x, False


class ConvEquations:
    """R-GAP's two linear constraints on a convolution's input x, as an operator for LSQR.

    The rows are [forward: conv(x) ; gradient: the weight gradient that dL/dz and x give], each block divided
    by the RMS of its right-hand side so that neither drowns the other.
    """

    def __init__(self, layer: ConvLayer, weight: torch.Tensor, output_grad: torch.Tensor,
                 forward_target: torch.Tensor, weight_grad: torch.Tensor, with_gradient: bool):
        conv = layer.conv
        self.shape = (1, *layer.input_shape)
        self.stride, self.padding = conv.stride, conv.padding
        self.weight, self.output_grad = weight.to(SOLVE_DTYPE), output_grad.to(SOLVE_DTYPE)
        self.with_gradient = with_gradient
        self.forward_target = forward_target.to(SOLVE_DTYPE)
        self.forward_scale = 1 / float(forward_target.pow(2).mean().sqrt().clamp_min(1e-30))
        self.gradient_scale = 1 / float(weight_grad.pow(2).mean().sqrt().clamp_min(1e-30))
        blocks = [forward_target.reshape(-1) * self.forward_scale]
        if with_gradient:
            blocks.append(weight_grad.reshape(-1) * self.gradient_scale)
        self.target = torch.cat(blocks).to(SOLVE_DTYPE)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        forward = F.conv2d(x, self.weight, None, self.stride, self.padding).reshape(-1) * self.forward_scale
        if not self.with_gradient:
            return forward
        gradient = torch.nn.grad.conv2d_weight(x, self.weight.shape, self.output_grad, self.stride, self.padding)
        return torch.cat([forward, gradient.reshape(-1) * self.gradient_scale])

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """The transpose of ``apply``: each block's adjoint is a convolution's input gradient."""
        forward = y[:self.output_grad.numel()].reshape(self.output_grad.shape) * self.forward_scale
        x = torch.nn.grad.conv2d_input(self.shape, self.weight, forward, self.stride, self.padding)
        if self.with_gradient:
            gradient = y[self.output_grad.numel():].reshape(self.weight.shape) * self.gradient_scale
            x = x + torch.nn.grad.conv2d_input(self.shape, gradient, self.output_grad, self.stride, self.padding)
        return x

    def _tensor(self, v: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(v)).to(SOLVE_DTYPE)

    def _polyphase(self) -> tuple[torch.Tensor, int] | None:
        """The stride-1 form of the forward rows (``polyphase``), where they suffice alone and it exists."""
        (s, s2), (p, p2) = self.stride, self.padding
        _, _, height, width = self.shape
        if self.with_gradient or height != width or s != s2 or p != p2:
            return None
        return polyphase(self.weight, s, p, height)

    def _solve_forward(self, kernel: torch.Tensor, padding: int) -> tuple[torch.Tensor, bool]:
        """Conjugate gradients on the polyphase normal equations, in channels-last layout (module docstring)."""
        kernel = kernel.contiguous(memory_format=CHANNELS_LAST)

        def normal(x: torch.Tensor) -> torch.Tensor:
            return F.conv_transpose2d(F.conv2d(x, kernel, None, 1, padding), kernel, None, 1, padding)

        target = self.forward_target.contiguous(memory_format=CHANNELS_LAST)
        phases, converged = conjugate_gradients(normal, F.conv_transpose2d(target, kernel, None, 1, padding))
        return F.pixel_shuffle(phases, self.stride[0]).contiguous(), converged

    def solve(self) -> torch.Tensor | None:
        """The least-squares input, or None when the solver does not converge (the layer is rank-deficient in fact)."""
        n, m = int(np.prod(self.shape)), self.target.numel()
        stride_one = self._polyphase()
        if stride_one is not None:
            x, converged = self._solve_forward(*stride_one)
            solution = x.reshape(-1)
        else:
            def matvec(v: np.ndarray) -> np.ndarray:
                return self.apply(self._tensor(v).reshape(self.shape)).numpy()

            def rmatvec(v: np.ndarray) -> np.ndarray:
                return self.adjoint(self._tensor(v)).reshape(-1).numpy()

            operator = LinearOperator((m, n), matvec=matvec, rmatvec=rmatvec, dtype=np.float32)
            result = lsqr(operator, self.target.numpy(), atol=LSQR_TOLERANCE, btol=LSQR_TOLERANCE, iter_lim=MAX_ITER)
            solution, converged = torch.from_numpy(result[0]), result[1] in (1, 2)  # 7: out of iterations
        if not converged:
            return None
        return solution.to(torch.float64).reshape(self.shape)
