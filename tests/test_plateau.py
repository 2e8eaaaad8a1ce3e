"""The plateau rule of the inversion engine (ronan.inversion.PlateauRule), as a unit."""

from __future__ import annotations

import torch

from ronan.inversion import InversionSettings, PlateauRule


def _run(settings, curves, steps):
    """Feed the rule best-loss curves (one function of the step per row); return the step at which each
    row's learning rate dropped and at which it stopped (None: never)."""
    n = len(curves)
    rule, lr = PlateauRule(settings, n, torch.device("cpu")), torch.full((n,), settings.lr)
    active = torch.arange(n)
    drops, stops = [[] for _ in range(n)], [None] * n
    for step in range(steps + 1):
        if not rule.due(step):
            continue
        best_all = torch.tensor([c(step) for c in curves])
        before = lr.clone()
        ending = rule.check(step, best_all, active, best_all[active], lr)
        for j, i in enumerate(active.tolist()):
            if lr[j] < before[j]:
                drops[i].append(step)
        if ending is not None and bool(ending.any()):
            for i in active[ending].tolist():
                stops[i] = step
            go = ~ending
            active, lr = active[go], lr[go]
            rule.keep(go)
    return drops, stops


def test_plateau_drops_then_stops():
    s = InversionSettings(steps=1000, plateau_steps=100, plateau_steps_after_drop=50, plateau_lr_drops=1)
    flat = lambda step: 1.0  # noqa: E731 - never improves
    falling = lambda step: 0.9 ** step  # noqa: E731 - improves by far more than 10% per 100 steps
    drops, stops = _run(s, [flat, falling], 400)
    assert drops == [[100], []]  # judged once its window W = 100 steps has passed: lr dropped
    assert stops == [150, None]  # then the window W' = 50 steps after the drop: stopped
    assert not PlateauRule(InversionSettings(steps=10, plateau_steps=0), 1, torch.device("cpu")).due(0)


def test_plateau_without_drops_stops_at_the_first_plateau():
    s = InversionSettings(steps=1000, plateau_steps=20, plateau_lr_drops=0)
    slow = lambda step: 1.0 - 0.001 * step  # noqa: E731 - less than 10% better over any 20 steps
    drops, stops = _run(s, [slow], 100)
    assert drops == [[]] and stops == [20]
