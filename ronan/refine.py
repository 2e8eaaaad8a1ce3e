"""Levenberg-Marquardt refinement: the last stretch of an inversion, where Adam crawls.

Near its minimum, ``||M(i) - x||^2`` is badly conditioned for real generators: some directions of
the input change the image a hundred times less than others. Adam then either oscillates (large
steps) or crawls (small ones): on a 64x64 DCGAN, inversions that start in the right basin are
still 10-100x above the 8-bit floor after 1500 steps (benchmarks/RESULTS.md, "Inversions that
converge"). The MSE is a least-squares problem, so a Gauss-Newton step ``(J^T J) d = J^T r``
solves the conditioning exactly: from inside the basin it reaches the floor in a few iterations.

:func:`refine` runs Levenberg-Marquardt (Gauss-Newton damped by ``lambda * diag(J^T J)``; a step
is taken only when it lowers the loss, else lambda grows) on each row, with the Jacobian of the
(edited) reconstruction by forward finite differences: ``d`` batched forward passes per iteration
for an input of ``d`` optimised entries, no second-order autograd, any generator. A row stops
when a step with a fresh Jacobian gains less than ``tol``, or when even the undamped Gauss-Newton
step is predicted to remove less than ``tol`` of its loss (:func:`gauss_newton_gain`: the residual
left is outside what the generator can change locally, e.g. the 8-bit rounding of its own image);
the second rule ends, at the same loss, rows that otherwise tried steps whose outcome is float noise
for up to 20 more iterations (benchmarks/RESULTS.md, "Where a batch's time goes, and rows with
nothing left to gain"). Meant for inputs of up to a few hundred entries (:data:`MAX_DIM`); larger
inputs are left to Adam.

With ``jacobian_every=k > 1`` the finite-difference Jacobian is computed afresh only every ``k``
iterations of a row, after a step that failed or stalled with an updated (not fresh) Jacobian, and
before a row may stop as converged; in between it is kept up to date by Broyden's rank-one update
from the step just tried, so such an iteration costs one forward pass instead of ``d + 1``
(Broyden, 1965; the LM-Broyden variant of Madsen, Nielsen and Tingleff, "Methods for non-linear
least squares problems", 2004, sec. 3.4). Kept
Jacobians are held in memory up to :data:`JACOBIAN_BUDGET` bytes; rows beyond it recompute.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch

MAX_DIM = 512
"""Largest number of optimised input entries refined (the Jacobian costs that many forwards)."""
EXACT = 1e-12
"""A loss at or below this is an exact reconstruction (float32 noise): the row stops, converged."""
FD_EPS = 1e-3
"""Finite-difference step on the input (inputs are ~N(0, 1))."""
CPU_CHUNK, CUDA_CHUNK = 32, 256
"""Images per forward pass of the refinement on a CPU and elsewhere (:func:`default_chunk`). On the
CPU a forward pass of 32 images costs 1.3-2x less per image than one of 256 on the 64x64 generators
(their activations then stay in cache), with bit-identical outputs (benchmarks/RESULTS.md, "Two
paths, the second only where the first failed"); a GPU wants large batches."""
JACOBIAN_BUDGET = 512 * 2**20
"""Bytes of Jacobians kept between iterations when ``jacobian_every > 1`` (rows x entries x pixels
x 4); the rows beyond it have theirs computed afresh every iteration."""


def gauss_newton_gain(jtj: torch.Tensor, grad: torch.Tensor, res: torch.Tensor) -> torch.Tensor:
    """The fraction of each row's squared residual that the undamped Gauss-Newton step would remove
    if the model were linear: ``g^T (J^T J)^-1 g / ||r||^2`` in [0, 1] (the residual's projection on
    the Jacobian's column space), computed in float64.

    Args:
        jtj (Tensor[R, d, d]): ``J^T J`` of each row (its Jacobian held as ``jac`` [d, pixels],
            so ``jac @ jac^T``, as :func:`refine` computes it).
        grad (Tensor[R, d, 1]): ``J^T r`` (``jac @ r``). res (Tensor[R, pixels]): the residual ``r``.
    """
    eye = torch.eye(jtj.shape[1], dtype=torch.float64, device=jtj.device)
    g = grad.double()
    gain = (g * torch.linalg.solve(jtj.double() + 1e-9 * eye, g)).sum((1, 2))
    return (gain / res.double().pow(2).sum(1).clamp_min(1e-300)).clamp(0, 1).to(res.dtype)


def refinable(n_inputs: int, distance: str) -> bool:
    """Whether :func:`refine` applies: MSE (a least-squares loss) and at most :data:`MAX_DIM` entries."""
    return distance == "mse" and 0 < n_inputs <= MAX_DIM


def default_chunk(device: torch.device | str) -> int:
    """Images per forward pass of :func:`refine` on ``device``: :data:`CPU_CHUNK` (32) on a CPU,
    :data:`CUDA_CHUNK` (256) elsewhere."""
    return CPU_CHUNK if torch.device(device).type == "cpu" else CUDA_CHUNK


@torch.no_grad()
def _forward(fn: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, chunk: int) -> torch.Tensor:
    return torch.cat([fn(inputs[i:i + chunk]).flatten(1) for i in range(0, len(inputs), chunk)])


@torch.no_grad()
def refine(
    fn: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    iterations: int = 8,
    mask: torch.Tensor | None = None,
    chunk: int | None = None,
    rows_per_jacobian: int = 16,
    tol: float = 1e-3,
    jacobian_every: int = 1,
    iterations_run: torch.Tensor | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Refine ``inputs`` so that ``fn(inputs)`` matches ``targets`` in mean squared error.

    Args:
        fn (callable): ``inputs[B, *shape] -> images[B, C, H, W]`` (the generator, through the
            edit's differentiable twin when inverting through an edit).
        inputs (Tensor[B, *shape]): starting inputs (Adam's best).
        targets (Tensor[B, C, H, W]): the images.
        iterations (int): most LM iterations, >= 1 (default 8).
        mask (Tensor | None): 1 on the input entries to optimise (a fixed condition has 0).
        chunk (int | None): images per forward pass (speed and memory), >= 1; None (default):
            :func:`default_chunk` of the inputs' device (32 on a CPU, 256 elsewhere).
        rows_per_jacobian (int): rows whose Jacobians are computed at once (memory: rows x pixels
            x entries floats), default 16.
        tol (float): a row stops once an accepted step taken with a fresh Jacobian improves its
            loss by less than this fraction (converged), once even the undamped Gauss-Newton step
            of a fresh Jacobian is predicted to remove less than this fraction of its loss
            (:func:`gauss_newton_gain`: nothing left to gain; without it a row at the 8-bit floor
            kept trying steps whose outcome is float noise), once its loss is at most
            :data:`EXACT`, or when its damping exceeds 1e8 (no step helps), default 1e-3.
        jacobian_every (int): >= 1; 1 (default) computes the finite-difference Jacobian at every
            iteration; ``k`` > 1 keeps it up to date with Broyden's update for ``k - 1``
            iterations in between (see the module docstring).
        iterations_run (Tensor[B] | None): if given (integer, on any device), each row's count is
            increased by the iterations it ran (a row that stopped runs no more), in place.

    Yields:
        ``(iteration, losses)`` after each iteration (losses ``Tensor[B]``, the best so far),
        and finally ``(-1, converged)`` with ``converged`` a bool ``Tensor[B]``: the row stopped
        by ``tol`` or by its damping rather than by the iteration cap.

    The refined inputs are written into ``inputs`` in place; losses never increase.
    """
    if jacobian_every < 1:
        raise ValueError(f"jacobian_every must be >= 1, not {jacobian_every}")
    chunk = chunk or default_chunk(inputs.device)
    b = inputs.shape[0]
    shape = inputs.shape[1:]
    flat = inputs.reshape(b, -1)
    free = torch.arange(flat.shape[1], device=inputs.device) if mask is None else \
        torch.nonzero(mask.reshape(-1) > 0).squeeze(1).to(inputs.device)
    d = len(free)
    y = targets.flatten(1)
    out = _forward(fn, inputs, chunk)                         # the reconstruction at each row's input
    cur = (out - y).pow(2).mean(1)
    lam = torch.full((b,), 1e-2, device=inputs.device)
    running = torch.ones(b, dtype=torch.bool, device=inputs.device)
    settled = torch.zeros(b, dtype=torch.bool, device=inputs.device)
    age = torch.full((b,), jacobian_every, dtype=torch.long)  # iterations since the row's fresh Jacobian
    keep_rows = 0 if jacobian_every == 1 else max(0, JACOBIAN_BUDGET // max(1, d * y.shape[1] * 4))
    kept: dict[int, torch.Tensor] = {}                        # row -> its Jacobian [d, pixels] (Broyden)
    eye = torch.eye(d, device=inputs.device)
    for it in range(iterations):
        rows = torch.nonzero(running).squeeze(1)
        if iterations_run is not None:
            iterations_run[rows.to(iterations_run.device)] += 1
        for part in rows.split(rows_per_jacobian):
            p = flat[part]
            if not keep_rows:  # every iteration from scratch, as before the Broyden option
                out[part] = _forward(fn, p.view(len(part), *shape), chunk)
            jac = torch.empty(len(part), d, y.shape[1], device=inputs.device)
            fresh = []
            for i, r in enumerate(part.tolist()):
                if age[r] >= jacobian_every or r not in kept:
                    fresh.append(i)
                else:
                    jac[i] = kept[r]
            if fresh:
                f = torch.tensor(fresh, device=inputs.device)
                probe = p[f].repeat_interleave(d, 0)
                probe[torch.arange(len(probe)), free.repeat(len(f))] += FD_EPS
                jac[f] = (_forward(fn, probe.view(-1, *shape), chunk).view(len(f), d, -1) - out[part][f][:, None]) \
                    / FD_EPS                                  # [R, d, pixels]
                age[part[f].cpu()] = 0
            res = out[part] - y[part]
            jtj = jac @ jac.transpose(1, 2)                   # [R, d, d]
            grad = jac @ res.unsqueeze(2)                     # [R, d, 1]
            damp = lam[part, None, None] * (torch.diagonal(jtj, dim1=1, dim2=2).unsqueeze(2) * eye + 1e-9 * eye)
            step = torch.linalg.solve(jtj + damp, grad).squeeze(2)
            cand = p.clone()
            cand[:, free] -= step
            cand_out = _forward(fn, cand.view(len(part), *shape), chunk)
            new = torch.nan_to_num((cand_out - y[part]).pow(2).mean(1), nan=float("inf"))
            ok = new < cur[part]
            gain = (cur[part] - new) / cur[part].clamp_min(1e-30)
            was_fresh = age[part.cpu()].to(inputs.device) == 0
            nothing_left = torch.zeros_like(ok)
            if bool(was_fresh.any()):  # only a fresh Jacobian's prediction is trusted
                nothing_left[was_fresh] = gauss_newton_gain(jtj[was_fresh], grad[was_fresh], res[was_fresh]) < tol
            old_out = out[part]
            flat[part] = torch.where(ok.unsqueeze(1), cand, p)
            out[part] = torch.where(ok.unsqueeze(1), cand_out, old_out)
            cur[part] = torch.where(ok, new, cur[part])
            lam[part] = torch.where(ok, lam[part] / 3, lam[part] * 4)
            done = (ok & (gain < tol) & was_fresh) | nothing_left | (lam[part] > 1e8) | (cur[part] <= EXACT)
            settled[part] |= done
            running[part] &= ~done
            if not keep_rows:
                continue
            # Broyden's update from the step tried (accepted or not): J += (dr - J s) s^T / (s^T s)
            moved = -step
            miss = (cand_out - old_out) - (jac.transpose(1, 2) @ moved.unsqueeze(2)).squeeze(2)
            jac = jac + moved.unsqueeze(2) * (miss / moved.pow(2).sum(1, keepdim=True).clamp_min(1e-30)).unsqueeze(1)
            # a stale Jacobian that failed or stalled is computed afresh next time
            stale = (~was_fresh & (~ok | (gain < tol))).tolist()
            for i, r in enumerate(part.tolist()):
                if bool(done[i]):
                    kept.pop(r, None)
                elif r in kept or len(kept) < keep_rows:
                    kept[r] = jac[i]
                    age[r] = jacobian_every if stale[i] else age[r] + 1
        yield it + 1, cur.clone()
        if not running.any():
            break
    inputs.copy_(flat.view_as(inputs))
    yield -1, settled
