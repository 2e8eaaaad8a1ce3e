"""CUDA graphs for the Adam steps of large generators on a GPU.

One Adam step of a hub UNet at batch 1 is bound by the host, not the GPU: a 296 M-parameter
consistency model issues thousands of small kernels from Python per forward and backward pass.
:class:`GraphedGenerate` records ``generator.generate`` (forward and backward) once per input
shape with ``torch.cuda.make_graphed_callables`` and replays it without the host's per-kernel
work. It is used by the engine's Adam loop (:func:`ronan.inversion.invert_stream`) for generators
that ask for it (``Generator.cuda_graphs``) on CUDA in fp32; the refinement, the final
reconstruction and every CPU run stay as they are.

Recording uses CUDA's global capture mode: no other thread of the process may use the GPU while a
graph is recorded (a few steps' time, once per shape). On a GPU the engine runs an attribution's
inversions one after the other (:func:`ronan.inversion.parallel_default`) and the app one job at a
time (its ``JobLine``), so nothing does.

Numbers: the images are the eager ones bit for bit; the input gradients differ at fp32 rounding
level (libraries may pick other kernels while a graph is recorded): measured on an H200, 1.2e-8
for a consistency model's gradients of size 1.9e-5, and 1.4e-4 for the 10-step DDIM's of size
2e-2, where two eager runs already differ by 5.5e-5 (its backward is not deterministic).
Speed there: 2.35x on the consistency model's step, 4.8x on the DDIM's, slower on the Stable
Diffusion VAE at 512x512 (not launch bound, so not used). benchmarks/RESULTS.md, "GPU: CUDA
graphs for the hub UNets".
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import cast

import torch

from .errors import described
from .models.base import Generator
from .precision import exact_fp32

# Replaying a graphed backward makes autograd warn once that the gradient of the input leaf comes
# from another stream; make_graphed_callables synchronises the streams itself, so it is noise here.
warnings.filterwarnings("ignore", message="The AccumulateGrad node's stream does not match", category=UserWarning)

MAX_SHAPES = 4
"""Input shapes recorded per inversion at most (rows leave the batch as they stop, so the shape
only shrinks); each recording costs a few steps' time. Further shapes run eagerly."""


def wants_graphs(generator: Generator, device: torch.device, precision: str, asked: bool | None = None) -> bool:
    """Replay the Adam steps from CUDA graphs?

    Args:
        generator (Generator): the model adapter; its ``cuda_graphs`` attribute is the default.
        device (torch.device): where the inversion runs; graphs only on CUDA.
        precision (str): ``"fp32"``, ``"bf16"`` or ``"fp16"``; graphs only in fp32 (autocast's
            weight cache cannot be recorded).
        asked (bool | None): the caller's choice; None (default): the generator's.
    """
    wanted = getattr(generator, "cuda_graphs", False) if asked is None else asked
    return bool(wanted) and device.type == "cuda" and precision == "fp32" and torch.cuda.is_available()


class GraphedGenerate:
    """``generator.generate`` for the Adam loop, replayed from a CUDA graph of the current input shape.

    Args:
        generator (Generator): frozen adapter on a CUDA device.
        max_shapes (int): shapes recorded at most (default :data:`MAX_SHAPES`); later shapes
            run eagerly.

    Calling it with ``params`` (Tensor[R, *input_shape], requires grad) returns the images
    (Tensor[R, C, H, W], a fresh tensor) differentiable with respect to ``params``, as
    ``generator.generate`` does. Only the latest shape's graph is kept (a graph holds the
    activations of its forward and backward pass, so GPU memory stays about that of one eager
    step, two while the next shape is recorded); a shape seen before it runs eagerly. A shape
    whose recording fails (a generator that synchronises with the host or copies from host memory
    inside ``generate``) runs eagerly, and so does every later one; ``failure`` holds the first
    error (None while there was none).
    """

    def __init__(self, generator: Generator, max_shapes: int = MAX_SHAPES):
        self.generator = generator
        self.max_shapes = max_shapes
        self.shapes: list[tuple[int, ...]] = []  # every shape seen, in order
        self.recorded = 0  # shapes replayed from a graph
        self.failure: str | None = None
        self._graph: tuple[tuple[int, ...], Callable[[torch.Tensor], torch.Tensor]] | None = None

    def __call__(self, params: torch.Tensor) -> torch.Tensor:
        key = tuple(params.shape)
        if key not in self.shapes:
            self.shapes.append(key)
            self._graph = None  # free the previous shape's graph before recording another
            if self.failure is None and self.recorded < self.max_shapes:
                graphed = self._record(params)
                if graphed is not None:
                    self._graph, self.recorded = (key, graphed), self.recorded + 1
        if self._graph is None or self._graph[0] != key:
            return self.generator.generate(params)
        return self._graph[1](params).clone()  # the graph's output buffer is overwritten by the next replay

    def _record(self, params: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor] | None:
        sample = params.detach().clone().requires_grad_(True)
        try:
            with exact_fp32():
                graphed = torch.cuda.make_graphed_callables(self.generator.generate, (sample,))
            return cast(Callable[[torch.Tensor], torch.Tensor], graphed)
        except Exception as exc:  # noqa: BLE001 - any recording failure: run eagerly instead
            self.failure = described(exc, 10_000)
            return None
