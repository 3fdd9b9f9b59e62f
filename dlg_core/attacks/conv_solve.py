"""Least squares for a convolution's input: R-GAP's forward and weight-gradient equations, never as a matrix.

A convolution's matrix at 128 px would have about 10^10 entries; the operator and its transpose are a
convolution and its input gradient instead (torch), and scipy's Krylov solvers do the rest:

- forward rows alone, at least as many as the unknowns (the wide CNN's layers): conjugate gradients on the
  normal equations, preconditioned in Fourier space. With circular instead of zero padding, a convolution
  of stride s is, per frequency of its output grid, a small C_out x (C_in s^2) matrix acting on the input's
  s x s polyphase components (``pixel_unshuffle``), so the normal matrix inverts frequency by frequency. The
  padding differs only at the borders, so that inverse is a good preconditioner (measured on the wide CNN
  at 128 px, three report photos: 19 + 28 iterations for its two layers and 70-73 dB, where LSQR at the same
  tolerance took 23 + 62 and stopped at 60-62 dB; the borders keep it from being near-exact);
- with the weight-gradient rows: LSQR, unpreconditioned.

Both run in float32: the shared gradient is float32, and 60 dB needs a relative error of about 1e-3.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import LinearOperator, cg, lsqr

from ..rank import ConvLayer

TOLERANCE = 3e-5  # relative residual: 70-73 dB on the wide CNN at 128 px; 1e-4 gave 60-64 dB, too close to 60
MAX_ITER = 400
SOLVE_DTYPE = torch.float32
RIDGE = 1e-6  # added to each frequency's normal matrix, relative to its mean diagonal (a rank-deficient one)


def fourier_inverse(weight: torch.Tensor, stride: int, padding: int, out_hw: tuple[int, int]) -> torch.Tensor:
    """Per frequency of the output grid (rfft2's half), the inverse of M^H M, M the polyphase transfer matrix."""
    c_out, c_in, k, _ = weight.shape
    s, (ho, wo) = stride, out_hw
    taps = torch.zeros(k, k, c_out, c_in, s, s)
    rows, cols = torch.zeros(k, k), torch.zeros(k, k)
    for a in range(k):
        q, u = divmod(a - padding, s)  # tap a reads polyphase row u, shifted by q rows
        for b in range(k):
            r, v = divmod(b - padding, s)
            taps[a, b, :, :, u, v] = weight[:, :, a, b]
            rows[a, b], cols[a, b] = q, r
    # M(w) = sum over taps of W_tap * exp(+i (w_1 q + w_2 r)): a correlation's transfer function
    w1 = 2 * torch.pi * torch.fft.fftfreq(ho)
    w2 = 2 * torch.pi * torch.fft.rfftfreq(wo)
    phase = torch.exp(1j * (w1[:, None, None, None] * rows + w2[None, :, None, None] * cols))  # h, w, k, k
    transfer = torch.einsum("hwab,abom->hwom", phase, taps.reshape(k, k, c_out, c_in * s * s).to(phase.dtype))
    normal = transfer.mH @ transfer
    ridge = RIDGE * normal.diagonal(dim1=-2, dim2=-1).real.mean()
    # complex64 throughout: a preconditioner need not be exact, and this is 2x as fast as complex128
    return torch.linalg.inv(normal + ridge * torch.eye(normal.shape[-1], dtype=normal.dtype))


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

    def _preconditioner(self) -> LinearOperator | None:
        """(A^T A)^-1 with circular padding, applied in Fourier space; None where it does not fit the layer."""
        s, p = self.stride[0], self.padding[0]
        _, _, height, width = self.shape
        ho, wo = self.output_grad.shape[-2:]
        if self.with_gradient or height != s * ho or width != s * wo or self.stride[1] != s or self.padding[1] != p:
            return None
        inverse = fourier_inverse(self.weight, s, p, (ho, wo)) / self.forward_scale**2
        n = int(np.prod(self.shape))

        def apply(v: np.ndarray) -> np.ndarray:
            phases = F.pixel_unshuffle(self._tensor(v).reshape(self.shape), s)[0]
            spectrum = (inverse @ torch.fft.rfft2(phases).permute(1, 2, 0)[..., None])[..., 0].permute(2, 0, 1)
            return F.pixel_shuffle(torch.fft.irfft2(spectrum, s=(ho, wo))[None], s).reshape(-1).numpy()

        return LinearOperator((n, n), matvec=apply, rmatvec=apply, dtype=np.float32)

    def solve(self) -> torch.Tensor | None:
        """The least-squares input, or None when the solver does not converge (the layer is rank-deficient in fact)."""
        n, m = int(np.prod(self.shape)), self.target.numel()
        preconditioner = self._preconditioner()
        if preconditioner is not None:
            def normal(v: np.ndarray) -> np.ndarray:
                return self.adjoint(self.apply(self._tensor(v).reshape(self.shape))).reshape(-1).numpy()

            operator = LinearOperator((n, n), matvec=normal, rmatvec=normal, dtype=np.float32)
            right = self.adjoint(self.target).reshape(-1).numpy()
            solution, info = cg(operator, right, rtol=TOLERANCE, maxiter=MAX_ITER, M=preconditioner)
            converged = info == 0
        else:
            def matvec(v: np.ndarray) -> np.ndarray:
                return self.apply(self._tensor(v).reshape(self.shape)).numpy()

            def rmatvec(v: np.ndarray) -> np.ndarray:
                return self.adjoint(self._tensor(v)).reshape(-1).numpy()

            operator = LinearOperator((m, n), matvec=matvec, rmatvec=rmatvec, dtype=np.float32)
            result = lsqr(operator, self.target.numpy(), atol=TOLERANCE, btol=TOLERANCE, iter_lim=MAX_ITER)
            solution, converged = result[0], result[1] in (1, 2)  # 7: out of iterations
        if not converged:
            return None
        return torch.from_numpy(solution).to(torch.float64).reshape(self.shape)


