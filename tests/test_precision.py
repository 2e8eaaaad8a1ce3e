"""The precision context of inversions: exact fp32 on CUDA (TF32 off), autocast only where asked for."""

import threading

import torch

from ronan.precision import autocast, exact_fp32


def test_exact_fp32_turns_tf32_off_and_restores_it(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)
    with exact_fp32():
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        with exact_fp32():  # nested (a calibration inside an attribution): still off
            assert not torch.backends.cudnn.allow_tf32
        assert not torch.backends.cudnn.allow_tf32, "the inner exit must not restore while the outer runs"
    assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32


def test_exact_fp32_holds_while_any_thread_still_inverts(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    inside, release, seen = threading.Event(), threading.Event(), []

    def long_inversion():
        with exact_fp32():
            inside.set()
            release.wait(10)
            seen.append(torch.backends.cudnn.allow_tf32)

    t = threading.Thread(target=long_inversion)
    t.start()
    inside.wait(10)
    with exact_fp32():  # a second request starts and ends while the first still runs
        pass
    release.set()
    t.join()
    assert seen == [False] and torch.backends.cudnn.allow_tf32


def test_autocast_on_cpu_changes_nothing():
    with autocast(torch.device("cpu"), "bf16"):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32
