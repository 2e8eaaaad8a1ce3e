"""The reverse-engineering engine (paper Eq. 1): ``i* = argmin_i L(M(i), x)``.

All images x restarts run as one batch; the loss of each image is the minimum over its
restarts and over all steps (including the starting point and the final iterate). The
engine is seeded (starting points come from :func:`ronan.seeding.rng` ``(seed, "inversion")``
and are the same for every image, so a batch gives the same result as one-by-one runs),
streams progress events, and can be stopped between steps.

Presets (``PRESETS``):

* ``"paper"``: the paper's procedure — Adam, lr 0.1, 1500 steps, 1 restart.
* ``"fast"`` (default): Adam, constant lr 0.2, 300 steps, 4 restarts; chosen by
  measurement on the bundled zoo (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Iterator

import torch

from .distances import Distance, get_distance
from .errors import Cancelled
from .models.base import Generator
from .seeding import rng


@dataclass(frozen=True)
class InversionSettings:
    """Optimiser settings of one inversion.

    Attributes:
        steps (int): Adam steps, >= 0 (default 300).
        lr (float): Adam learning rate, constant (default 0.2).
        restarts (int): random starting points per image, >= 1 (default 4); models with an
            encoder replace the first by the encoder's estimate, conditional models may
            multiply them (see ``Generator.expand_restarts``).
        betas (tuple[float, float]): Adam betas (default (0.9, 0.999), torch's default).
        precision (str): ``"fp32"`` (default), or ``"bf16"``/``"fp16"`` autocast of the
            generator on CUDA (ignored elsewhere; losses are always computed in fp32).
    """

    steps: int = 300
    lr: float = 0.2
    restarts: int = 4
    betas: tuple[float, float] = (0.9, 0.999)
    precision: str = "fp32"

    def __post_init__(self):
        if self.steps < 0 or self.restarts < 1 or not self.lr > 0:
            raise ValueError(f"invalid inversion settings: steps={self.steps} restarts={self.restarts} lr={self.lr}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, not {self.precision!r}")

    def to_dict(self) -> dict:
        """JSON-serialisable dict of the settings."""
        d = asdict(self)
        d["betas"] = list(self.betas)
        d["optimizer"] = "adam"
        return d


PRESETS: dict[str, InversionSettings] = {
    "paper": InversionSettings(steps=1500, lr=0.1, restarts=1),
    "fast": InversionSettings(steps=300, lr=0.2, restarts=4),
}
DEFAULT_PRESET = "fast"


def resolve_settings(preset: str | None = None, **overrides) -> InversionSettings:
    """Settings of ``preset`` (default ``DEFAULT_PRESET``) with non-None ``overrides`` applied.

    Raises:
        ValueError: unknown preset or invalid value.
    """
    name = preset or DEFAULT_PRESET
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return replace(PRESETS[name], **overrides)


@dataclass
class InversionProgress:
    """A progress event.

    Attributes:
        step (int): steps done so far (0 .. steps).
        steps (int): total steps.
        best_loss (Tensor[B]): best loss so far per image (min over restarts and steps), CPU.
        current_loss (Tensor[B]): loss at this step, min over restarts, CPU.
        elapsed (float): seconds since the start.
        reconstructions (Tensor[B, C, H, W] | None): current reconstruction of each image's
            best restart (CPU), only with ``with_images=True``.
    """

    step: int
    steps: int
    best_loss: torch.Tensor
    current_loss: torch.Tensor
    elapsed: float
    reconstructions: torch.Tensor | None = None


@dataclass
class InversionResult:
    """Outcome of an inversion of B images.

    Attributes:
        loss (Tensor[B]): reconstruction loss A(M, x) — min over restarts and steps.
        inputs (Tensor[B, *input_shape]): the input that reached it.
        reconstructions (Tensor[B, C, H, W]): ``M(inputs)``.
        history (Tensor[steps+1, B]): loss per step, min over restarts (before cummin).
        best_restart (Tensor[B]): index of the winning row among the image's rows.
        seconds (float): wall time.
        steps_run (int): steps done (< steps when stopped early).
        settings (InversionSettings), seed (int), distance (str).
    """

    loss: torch.Tensor
    inputs: torch.Tensor
    reconstructions: torch.Tensor
    history: torch.Tensor
    best_restart: torch.Tensor
    seconds: float
    steps_run: int
    settings: InversionSettings
    seed: int
    distance: str
    extra: dict = field(default_factory=dict)


def _autocast(device: torch.device, precision: str):
    if device.type == "cuda" and precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def invert_stream(
    generator: Generator,
    images: torch.Tensor,
    *,
    distance: str | Distance = "mse",
    settings: InversionSettings | None = None,
    seed: int = 0,
    progress_every: int = 10,
    with_images: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[InversionProgress | InversionResult]:
    """Invert ``images`` on ``generator``, yielding progress events, then the result.

    Args:
        generator (Generator): frozen model adapter.
        images (Tensor[B, C, H, W]): targets in [0, 1], already in the model's domain.
        distance (str | Distance): loss L, default ``"mse"``.
        settings (InversionSettings | None): default: the ``"fast"`` preset.
        seed (int): seed of the starting points, default 0.
        progress_every (int): yield an :class:`InversionProgress` every that many steps
            (and at the first and last); default 10.
        with_images (bool): attach current reconstructions to progress events.
        should_stop (callable | None): polled every step; when it returns True the run
            ends early and the result covers the steps done (``steps_run``).

    Yields:
        InversionProgress events, and finally one InversionResult.
    """
    settings = settings or PRESETS[DEFAULT_PRESET]
    device = generator.device
    dist = get_distance(distance, device)
    if images.dim() != 4 or images.shape[1:] != (generator.channels, generator.image_size, generator.image_size):
        raise ValueError(f"images must be [B, {generator.channels}, {generator.image_size}, {generator.image_size}], "
                         f"got {list(images.shape)}")
    t0 = time.perf_counter()
    images = images.to(device=device, dtype=torch.float32)
    n_img = images.shape[0]
    rows = generator.expand_restarts(settings.restarts)
    start = generator.initial_inputs(images, settings.restarts, rng(seed, "inversion")).to(device)
    if start.shape[0] != n_img * rows:
        raise RuntimeError(f"{generator.name}: initial_inputs gave {start.shape[0]} rows, expected {n_img * rows}")
    targets = images.repeat_interleave(rows, dim=0)
    params = start.detach().clone().requires_grad_(True)
    mask = generator.input_gradient_mask()
    fused = device.type in ("cpu", "cuda")  # one kernel per step instead of ~10 small ones
    opt = torch.optim.Adam([params], lr=settings.lr, betas=settings.betas, fused=fused)
    best = torch.full((n_img * rows,), float("inf"), device=device)
    best_inputs = start.detach().clone()
    history = []
    step = 0
    stopped = False
    while True:
        with _autocast(device, settings.precision):
            recon = generator.generate(params)
        loss = dist(recon.float(), targets)
        with torch.no_grad():
            current = torch.nan_to_num(loss.detach(), nan=float("inf"))
            improved = current < best
            best = torch.where(improved, current, best)
            keep = improved.view(-1, *([1] * (params.dim() - 1)))
            best_inputs = torch.where(keep, params.detach(), best_inputs)
            history.append(current.view(n_img, rows).min(1).values)
        last = step == settings.steps or stopped
        if step % progress_every == 0 or last:
            event = InversionProgress(step, settings.steps, best.view(n_img, rows).min(1).values.cpu(),
                                      history[-1].cpu(), time.perf_counter() - t0)
            if with_images:
                pick = current.view(n_img, rows).argmin(1) + torch.arange(n_img, device=device) * rows
                event.reconstructions = recon.detach()[pick].float().cpu()
            yield event
        if last:
            break
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        if mask is not None:
            params.grad.mul_(mask)
        opt.step()
        step += 1
        if should_stop is not None and should_stop():
            stopped = True

    with torch.no_grad():
        per_image = best.view(n_img, rows)
        loss_min, arg = per_image.min(1)
        pick = arg + torch.arange(n_img, device=device) * rows
        inputs = best_inputs[pick]
        with _autocast(device, settings.precision):
            recons = generator.generate(inputs).float()
    yield InversionResult(
        loss=loss_min.cpu(), inputs=inputs.cpu(), reconstructions=recons.cpu(),
        history=torch.stack(history).cpu(), best_restart=arg.cpu(), seconds=time.perf_counter() - t0,
        steps_run=step, settings=settings, seed=seed, distance=dist.name,
        extra={"stopped": stopped, "rows_per_image": rows})


def invert(
    generator: Generator,
    images: torch.Tensor,
    *,
    callback: Callable[[InversionProgress], None] | None = None,
    **kwargs,
) -> InversionResult:
    """Run :func:`invert_stream` to the end and return its :class:`InversionResult`.

    Args:
        callback (callable | None): called with each :class:`InversionProgress`.
        **kwargs: as for :func:`invert_stream`.
    """
    for event in invert_stream(generator, images, **kwargs):
        if isinstance(event, InversionResult):
            return event
        if callback is not None:
            callback(event)
    raise Cancelled("inversion ended without a result")  # pragma: no cover


def parallel_default(device: torch.device) -> bool:
    """Run independent inversions side by side? Yes on a CPU with one torch thread per job.

    Tiny generators do not parallelise well inside an op; two inversions (inspected and
    reference model) on two cores with one thread each are ~1.8x faster than one after the
    other with two threads (benchmarks/RESULTS.md). With more torch threads, or on a GPU,
    they run one after the other.
    """
    return device.type == "cpu" and torch.get_num_threads() == 1


def invert_jobs_stream(
    jobs: list[tuple[str, Generator, torch.Tensor]],
    *,
    parallel: bool | None = None,
    should_stop: Callable[[], bool] | None = None,
    **kwargs,
) -> Iterator[tuple[str, InversionProgress | InversionResult]]:
    """Run several independent inversions, yielding ``(role, event)`` pairs.

    Args:
        jobs (list): ``(role, generator, images)`` triples, e.g. ``("model", M, x)`` and
            ``("reference", M_r, x_r)``.
        parallel (bool | None): run the jobs in threads at once; default
            :func:`parallel_default` of the first job's device. Results are the same either way.
        should_stop (callable | None): as for :func:`invert_stream`; closing this generator
            stops running jobs too.
        **kwargs: as for :func:`invert_stream`.
    """
    if parallel is None:
        parallel = len(jobs) > 1 and parallel_default(jobs[0][1].device)
    if not parallel:
        for role, gen, images in jobs:
            for event in invert_stream(gen, images, should_stop=should_stop, **kwargs):
                yield role, event
        return

    import queue
    import threading

    events: queue.Queue = queue.Queue()
    closed = threading.Event()

    def stop() -> bool:
        return closed.is_set() or (should_stop is not None and should_stop())

    def work(role, gen, images):
        try:
            for event in invert_stream(gen, images, should_stop=stop, **kwargs):
                events.put((role, event))
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            events.put((role, e))
        finally:
            events.put((role, None))

    threads = [threading.Thread(target=work, args=job, daemon=True) for job in jobs]
    for t in threads:
        t.start()
    running = len(threads)
    try:
        while running:
            role, event = events.get()
            if event is None:
                running -= 1
            elif isinstance(event, BaseException):
                raise event
            else:
                yield role, event
    finally:
        closed.set()
        for t in threads:
            t.join()
