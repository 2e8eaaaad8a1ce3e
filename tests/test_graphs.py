"""CUDA graphs for the Adam loop (ronan.graphs): the choice, the per-shape cache, the eager
fallback; the CUDA numbers are tests/test_hub_models.py's."""

import torch

from ronan import graphs
from ronan.inversion import InversionSettings, invert


def test_graphs_only_on_cuda_in_fp32(tiny_dcgan):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not graphs.wants_graphs(tiny_dcgan, cpu, "fp32", asked=True)
    assert not graphs.wants_graphs(tiny_dcgan, cuda, "bf16", asked=True)
    assert not graphs.wants_graphs(tiny_dcgan, cuda, "fp32")  # the generator's default: off
    assert graphs.wants_graphs(tiny_dcgan, cuda, "fp32", asked=True) == torch.cuda.is_available()


def test_asking_for_graphs_on_a_cpu_changes_nothing(tiny_dcgan):
    x = torch.rand(2, 1, 28, 28)
    settings = InversionSettings(steps=20, lr=0.1, restarts=2)
    plain = invert(tiny_dcgan, x, settings=settings, seed=3)
    asked = invert(tiny_dcgan, x, settings=settings, seed=3, cuda_graphs=True)
    assert torch.equal(plain.loss, asked.loss) and torch.equal(plain.inputs, asked.inputs)
    assert "cuda_graphs" not in asked.extra


def test_one_graph_per_shape_and_a_fresh_output(monkeypatch, tiny_dcgan):
    recorded, replayed = [], []

    def fake_record(fn, sample_args):  # a "graph" that is the function, noting its replays
        shape = tuple(sample_args[0].shape)
        recorded.append(shape)

        def replay(x):
            replayed.append(shape)
            return fn(x)

        return replay

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", fake_record)
    forward = graphs.GraphedGenerate(tiny_dcgan, max_shapes=2)
    a, b, c = (torch.randn(n, 8, requires_grad=True) for n in (3, 3, 2))
    out_a, out_b = forward(a), forward(b)
    assert torch.equal(out_a, tiny_dcgan.generate(a)) and out_a.data_ptr() != out_b.data_ptr()
    forward(c)  # a new shape: recorded, the previous graph dropped
    forward(a)  # a shape seen before: eager
    forward(torch.randn(1, 8, requires_grad=True))  # a third new shape: over max_shapes, eager
    assert recorded == [(3, 8), (2, 8)] and replayed == [(3, 8), (3, 8), (2, 8)]
    assert forward.recorded == 2 and forward.failure is None
    out_a.sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0


def test_a_shape_that_cannot_be_recorded_runs_eagerly(monkeypatch, tiny_dcgan):
    calls = []

    def refuse(fn, sample_args):
        calls.append(1)
        raise RuntimeError("operation not permitted when stream is capturing\nmore detail")

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", refuse)
    forward = graphs.GraphedGenerate(tiny_dcgan)
    x = torch.randn(2, 8, requires_grad=True)
    assert torch.equal(forward(x), tiny_dcgan.generate(x))
    forward(torch.randn(3, 8, requires_grad=True))  # no second try after a failure
    assert len(calls) == 1 and forward.recorded == 0
    assert forward.failure == "RuntimeError: operation not permitted when stream is capturing"


def test_results_name_the_models_that_replayed_graphs(monkeypatch, tiny_dcgan):
    from ronan.provenance import environment

    class Graphed(type(tiny_dcgan)):
        cuda_graphs = True

    graphed = Graphed(latent_dim=8, base=8, channels=1, image_size=28).freeze()
    graphed.name = "big-unet"
    assert "cuda_graphs" not in environment("cpu", (graphed, tiny_dcgan))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "a GPU")
    assert environment("cuda", (graphed, tiny_dcgan, None))["cuda_graphs"] == ["big-unet"]
    assert environment("cuda", (graphed,), "bf16")["cuda_graphs"] == []  # graphs only in fp32
