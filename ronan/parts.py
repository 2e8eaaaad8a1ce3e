"""One inversion in parts side by side: split its images, run the parts in threads, merge.

A batch's images are inverted independently of each other (every image's rows, starts and stopping
rules are its own, :mod:`ronan.inversion`), so a batch can be cut into parts that run on separate
cores with one torch thread each and be put back together; the numbers differ from one run over
the whole batch only by float rounding (kernels may sum in another order for another batch size).
:mod:`ronan.attribution` uses this to run first the inspected model's inversion and then the
reference model's on both cores (the reference's only as far as the verdict needs).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .inversion import PER_IMAGE_EXTRA, InversionProgress, InversionResult, invert_jobs_stream


def split(n: int, parts: int, heavy: torch.Tensor | None = None) -> list[torch.Tensor]:
    """``n`` images dealt into at most ``parts`` parts (index tensors, none empty, sizes within one):
    the ``heavy`` ones (bool Tensor[n], e.g. those whose inversion will run to its end) first, then
    the others, so that each part gets its share of both whatever the images' order."""
    parts = max(1, min(parts, n))
    if parts == 1:
        return [torch.arange(n)]  # one part: the batch's own order (merge_results relies on it)
    order = (
        torch.arange(n)
        if heavy is None
        else torch.cat([torch.nonzero(heavy).squeeze(1), torch.nonzero(~heavy).squeeze(1)])
    )
    return [order[k::parts] for k in range(parts)]


def merge_results(results: list[InversionResult], parts: list[torch.Tensor]) -> InversionResult:
    """One :class:`InversionResult` of a batch from the results of its ``parts`` (:func:`split`),
    in the batch's order.

    Per-image fields are concatenated (also those of ``extra``,
    :data:`ronan.inversion.PER_IMAGE_EXTRA`); ``history`` (one row per step) of a part that ran fewer
    steps is extended with its last row (its images keep their best loss from then on, as stopped
    rows do); ``steps_run`` and ``seconds`` are the longest part's (the parts ran side by side),
    ``extra["row_steps"]`` the sum.
    """
    if len(results) == 1:
        return results[0]
    first = results[0]
    back = torch.argsort(torch.cat(parts))  # position in the parts' order of each image of the batch
    length = max(r.history.shape[0] for r in results)
    history = torch.cat(
        [torch.cat([r.history, r.history[-1:].expand(length - r.history.shape[0], -1)]) for r in results], dim=1
    )[:, back]

    def cat(name: str):
        values = [getattr(r, name) for r in results]
        return None if any(v is None for v in values) else torch.cat(values)[back]

    return InversionResult(
        loss=cat("loss"),
        inputs=cat("inputs"),
        reconstructions=cat("reconstructions"),
        history=history,
        best_restart=cat("best_restart"),
        seconds=max(r.seconds for r in results),
        steps_run=max(r.steps_run for r in results),
        settings=first.settings,
        seed=first.seed,
        distance=first.distance,
        image_steps=cat("image_steps"),
        settled=cat("settled"),
        extra={
            **first.extra,
            **{
                key: _in_batch_order([r.extra[key] for r in results], back)
                for key in PER_IMAGE_EXTRA
                if key in first.extra
            },
            "stopped": any(r.extra.get("stopped") for r in results),
            "row_steps": sum(r.extra.get("row_steps", 0) for r in results),
        },
        cut=cat("cut"),
    )


def _in_batch_order(lists: list[list], back: torch.Tensor) -> list:
    """Per-image lists of the parts, one list in the batch's order."""
    flat = [v for values in lists for v in values]
    return [flat[k] for k in back.tolist()]


def merge_progress(events: list[InversionProgress], parts: list[torch.Tensor]) -> InversionProgress:
    """One progress event from the latest event of every part (:func:`split`): per-image values in
    the batch's order, ``step`` the slowest part's, ``done`` when every part is done."""
    back = torch.argsort(torch.cat(parts))
    recon = [e.reconstructions for e in events if e.reconstructions is not None]
    return InversionProgress(
        step=min(e.step for e in events),
        steps=events[0].steps,
        best_loss=torch.cat([e.best_loss for e in events])[back],
        current_loss=torch.cat([e.current_loss for e in events])[back],
        elapsed=max(e.elapsed for e in events),
        active_rows=sum(e.active_rows for e in events),
        done=all(e.done for e in events),
        reconstructions=torch.cat(recon)[back] if len(recon) == len(events) else None,
    )


def invert_parts_stream(
    role: str,
    generator,
    images: torch.Tensor,
    options: dict,
    *,
    parts: int,
    heavy: torch.Tensor | None = None,
    **kwargs,
) -> Iterator[tuple[str, InversionProgress | InversionResult]]:
    """Invert ``images`` on ``generator`` in ``parts`` parts side by side (threads; one part runs
    alone), yielding ``(role, event)`` pairs as :func:`ronan.inversion.invert_jobs_stream` does:
    merged progress once every part has reported, then the merged result.

    Args:
        role (str): the role named in the events, e.g. ``"model"``.
        generator (Generator), images (Tensor[B, C, H, W]): as for :func:`ronan.inversion.invert_stream`.
        options (dict): keyword arguments of :func:`ronan.inversion.invert_stream` for this
            inversion (e.g. ``settings``, ``transform``), except that a ``stop_images`` callable is
            called as ``stop_images(best, part)``: ``best`` the losses of the images ``part`` (an
            index tensor into ``images``).
        parts (int): >= 1; at most one part per image.
        heavy (Tensor[B] | None): bool, the images expected to cost most, spread evenly over the
            parts (:func:`split`); default None (all alike).
        **kwargs: as for :func:`ronan.inversion.invert_jobs_stream` (``should_stop``, ``seed``, ...).
    """
    chunks = split(len(images), parts, heavy)
    jobs = [(k, generator, images[s], _part_options(options, s)) for k, s in enumerate(chunks)]
    latest: dict[int, InversionProgress] = {}
    done: dict[int, InversionResult] = {}
    for k, event in invert_jobs_stream(jobs, parallel=len(jobs) > 1, **kwargs):
        if isinstance(event, InversionResult):
            done[k] = event
            continue
        latest[k] = event
        if len(latest) == len(jobs):
            yield role, merge_progress([latest[j] for j in range(len(jobs))], chunks)
    yield role, merge_results([done[k] for k in range(len(jobs))], chunks)


def _part_options(options: dict, part: torch.Tensor) -> dict:
    """``options`` for the images ``part``: ``stop_images(best, part)`` as the part's ``stop_images(best)``."""
    stop = options.get("stop_images")
    if stop is None:
        return options
    return {**options, "stop_images": lambda best: stop(best, part)}
