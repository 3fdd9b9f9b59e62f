"""L-BFGS with a long, cheap memory: the compact representation instead of the two-loop recursion.

PyTorch's ``torch.optim.LBFGS`` computes each search direction with the two-loop recursion: about 4m tiny
vector operations for a history of m pairs, each paying Python and dispatcher overhead. For the small
images of this demo that overhead was a quarter of an attack's time at m = 100 (profiled), and a longer
history needs far fewer gradient evaluations (measured: m = 300 needs ~40% fewer than m = 100). The
compact form of Byrd, Nocedal & Schnabel (1994; Nocedal & Wright eq. 7.24) gives the same direction
from a handful of matrix products, whatever m is. The step logic otherwise mirrors PyTorch's, and its
strong-Wolfe line search is reused as is.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.optim.lbfgs import _strong_wolfe  # PyTorch's own line search (pinned torch version)


class CompactLBFGS:
    def __init__(self, params: list[torch.Tensor], lr: float = 1.0, max_iter: int = 20, history_size: int = 100,
                 line_search_fn: str | None = None, tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9):
        self.params = params
        self.lr, self.max_iter, self.history_size = lr, max_iter, history_size
        self.max_eval = max_iter * 5 // 4
        self.line_search_fn = line_search_fn
        self.tolerance_grad, self.tolerance_change = tolerance_grad, tolerance_change
        n = sum(p.numel() for p in params)
        dtype = torch.float64  # the small m x m systems are solved in double precision, for stability
        device = params[0].device
        self.S = torch.empty(0, n, dtype=dtype, device=device)  # rows: steps s_i
        self.Y = torch.empty(0, n, dtype=dtype, device=device)  # rows: gradient changes y_i
        self.SY = torch.empty(0, 0, dtype=dtype, device=device)  # s_i . y_j
        self.YY = torch.empty(0, 0, dtype=dtype, device=device)  # y_i . y_j
        self.gamma = 1.0
        self.d: torch.Tensor | None = None
        self.t = lr
        self.prev_grad: torch.Tensor | None = None
        self.total_iters = 0

    # --- parameters as one flat vector -------------------------------------------------------------------
    def _flat_grad(self) -> torch.Tensor:
        return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                          for p in self.params]).to(self.S.dtype)

    def _add(self, t: float, d: torch.Tensor) -> None:
        offset = 0
        with torch.no_grad():
            for p in self.params:
                k = p.numel()
                p.add_(d[offset:offset + k].view_as(p).to(p.dtype), alpha=t)
                offset += k

    def _get(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.params]

    def _set(self, values: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for p, v in zip(self.params, values, strict=True):
                p.copy_(v)

    def _trial(self, closure: Callable[[], torch.Tensor]):
        """The line search's objective: loss and gradient at x + step * direction, leaving x as it was."""
        start = self._get()

        def evaluate(_x, step: float, direction: torch.Tensor) -> tuple[float, torch.Tensor]:
            self._add(step, direction)
            value = float(closure().detach())
            grad = self._flat_grad()
            self._set(start)
            return value, grad

        return evaluate

    # --- memory ------------------------------------------------------------------------------------------
    def _remember(self, s: torch.Tensor, y: torch.Tensor) -> None:
        if len(self.S) == self.history_size:  # forget the oldest pair
            self.S, self.Y, self.SY, self.YY = self.S[1:], self.Y[1:], self.SY[1:, 1:], self.YY[1:, 1:]
        s_y_old, y_y_old = self.S @ y, self.Y @ y  # new column of SY, new row/column of YY
        new_s_y_cols = s @ self.Y.T  # s . y_j for the old y_j: new row of SY
        self.S, self.Y = torch.cat([self.S, s[None]]), torch.cat([self.Y, y[None]])
        m = len(self.S)
        SY = self.SY.new_empty(m, m)
        SY[:-1, :-1], SY[:-1, -1], SY[-1, :-1], SY[-1, -1] = self.SY, s_y_old, new_s_y_cols, s @ y
        YY = self.YY.new_empty(m, m)
        YY[:-1, :-1], YY[:-1, -1], YY[-1, :-1], YY[-1, -1] = self.YY, y_y_old, y_y_old, y @ y
        self.SY, self.YY = SY, YY
        self.gamma = float(s @ y / (y @ y))

    def _direction(self, g: torch.Tensor) -> torch.Tensor:
        """-H g with H the L-BFGS inverse-Hessian approximation, in compact form."""
        if len(self.S) == 0:
            return -g
        gamma = self.gamma
        R = torch.triu(self.SY)
        a, b = self.S @ g, self.Y @ g
        u = torch.linalg.solve_triangular(R, a[:, None], upper=True)[:, 0]
        rhs = torch.diagonal(self.SY) * u + gamma * (self.YY @ u) - gamma * b
        p = torch.linalg.solve_triangular(R.T, rhs[:, None], upper=False)[:, 0]
        return -(gamma * g + self.S.T @ p - gamma * (self.Y.T @ u))

    # --- one step, as torch.optim.LBFGS.step ---------------------------------------------------------------
    def step(self, closure: Callable[[], torch.Tensor]) -> float:
        loss = orig_loss = float(closure().detach())
        evals = 1
        g = self._flat_grad()
        if g.abs().max() <= self.tolerance_grad:
            return orig_loss
        d, t, prev_grad = self.d, self.t, self.prev_grad
        n_iter = 0
        while n_iter < self.max_iter:
            n_iter += 1
            self.total_iters += 1
            if self.total_iters == 1:
                d = -g
            else:
                y, s = g - prev_grad, d * t
                if y @ s > 1e-10:
                    self._remember(s, y)
                d = self._direction(g)
            prev_grad, prev_loss = g.clone(), loss
            t = min(1.0, 1.0 / float(g.abs().sum())) * self.lr if self.total_iters == 1 else self.lr
            gtd = float(g @ d)
            if gtd > -self.tolerance_change:
                break
            if self.line_search_fn == "strong_wolfe":
                loss, g, t, ls_evals = _strong_wolfe(self._trial(closure), None, t, d, loss, g, gtd)
                self._add(t, d)
                converged = g.abs().max() <= self.tolerance_grad
            else:
                self._add(t, d)
                ls_evals = 0
                converged = False
                if n_iter != self.max_iter:
                    loss = float(closure().detach())
                    g = self._flat_grad()
                    converged = g.abs().max() <= self.tolerance_grad
                    ls_evals = 1
            evals += ls_evals
            if n_iter == self.max_iter or evals >= self.max_eval or converged:
                break
            if (d * t).abs().max() <= self.tolerance_change or abs(loss - prev_loss) < self.tolerance_change:
                break
        self.d, self.t, self.prev_grad = d, t, prev_grad
        return orig_loss
