"""Hub (diffusers) adapters, tested offline with tiny random-weight pipelines (issue 5).

Each tiny pipeline is saved with ``save_pretrained`` (safetensors) to a temporary folder and
loaded through the registry's hub code path (``load_model``), exactly like a cached Hub
snapshot; ``HF_HUB_OFFLINE=1`` and an empty ``HF_HUB_CACHE`` keep the network out.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, SAMPLES

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

from ronan.inversion import InversionSettings, invert  # noqa: E402
from ronan.models import hub, registry  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf-empty")))
    monkeypatch.setattr(registry, "_LOADED", {})


def tiny_unet(classes=None, size=16):
    torch.manual_seed(0)
    return diffusers.UNet2DModel(
        sample_size=size, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=4, attention_head_dim=8, num_class_embeds=classes)


@pytest.fixture(scope="module")
def cm_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-cm")
    tiny_unet(classes=4).save_pretrained(root / "unet")
    diffusers.CMStochasticIterativeScheduler().save_pretrained(root / "scheduler")
    return root


@pytest.fixture(scope="module")
def cm_uncond_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-cm-uncond")
    tiny_unet().save_pretrained(root / "unet")
    diffusers.CMStochasticIterativeScheduler().save_pretrained(root / "scheduler")
    return root


@pytest.fixture(scope="module")
def ddpm_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-ddpm")  # flat layout, like google/ddpm-cifar10-32
    tiny_unet().save_pretrained(root)
    # x0-prediction keeps a random-weight UNet's images in range (an eps-predicting one saturates)
    diffusers.DDPMScheduler(num_train_timesteps=1000, prediction_type="sample").save_pretrained(root)
    return root


def _tiny_tokenizer(folder):
    """A byte-level CLIP tokenizer with no merges (one token per character)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b), cs.append(256 + n)
            n += 1
    chars = [chr(c) for c in cs]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    vocab.update({c: len(vocab) + i for i, c in enumerate(chars)})
    vocab.update({c + "</w>": len(vocab) + i for i, c in enumerate(chars)})
    tok = transformers.CLIPTokenizer(vocab=vocab, merges=[], model_max_length=8)
    tok.save_pretrained(folder)
    return len(vocab), 0, 1


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-sd")
    n_vocab, bos, eos = _tiny_tokenizer(root / "tokenizer")
    torch.manual_seed(0)
    diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=4,
        norm_num_groups=4, sample_size=32, layers_per_block=1).save_pretrained(root / "vae")
    diffusers.UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, norm_num_groups=4, attention_head_dim=4).save_pretrained(root / "unet")
    transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=n_vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=8, bos_token_id=bos, eos_token_id=eos, pad_token_id=eos,
    )).save_pretrained(root / "text_encoder")
    diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                            beta_end=0.012, clip_sample=False, steps_offset=1).save_pretrained(root / "scheduler")
    return root


def use(monkeypatch, name, folder):
    monkeypatch.setattr(hub.HUB_MODELS[name], "repo", str(folder))
    return registry.load_model(name, "cpu")


# ------------------------------------------------------------ consistency
def test_cm_equals_pipeline_one_step(monkeypatch, cm_dir, cm_uncond_dir):
    z = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    # fixed, user-given class: the pipeline's own embedding lookup
    monkeypatch.setattr(hub.HUB_MODELS["cm-imagenet64-l2"], "repo", str(cm_dir))
    fixed = hub.load_hub_model("cm-imagenet64-l2", torch.device("cpu"), class_label=2)
    pipe = diffusers.ConsistencyModelPipeline(
        unet=diffusers.UNet2DModel.from_pretrained(str(cm_dir / "unet"), use_safetensors=True),
        scheduler=diffusers.CMStochasticIterativeScheduler.from_pretrained(str(cm_dir / "scheduler")))
    ref = pipe(batch_size=2, class_labels=[2, 2], latents=z.clone(), num_inference_steps=1, output_type="pt").images
    with torch.no_grad():
        assert torch.allclose(fixed.generate(z), ref, atol=1e-6), (fixed.generate(z) - ref).abs().max()
    # relaxed label (default): a sampled one-hot input gives the same image
    relaxed = use(monkeypatch, "cm-imagenet64-l2", cm_dir)
    assert relaxed.input_shape == (3 * 16 * 16 + 4,)
    ref1 = pipe(batch_size=2, class_labels=[1, 3], latents=z.clone(), num_inference_steps=1, output_type="pt").images
    with torch.no_grad():
        out = relaxed.generate(relaxed.make_inputs(z, torch.tensor([1, 3])))
    assert torch.allclose(out, ref1, atol=1e-6)
    # unconditional (LSUN models)
    unc = use(monkeypatch, "cm-bedroom256", cm_uncond_dir)
    pipe_u = diffusers.ConsistencyModelPipeline(unet=unc.unet, scheduler=diffusers.CMStochasticIterativeScheduler())
    ref_u = pipe_u(batch_size=2, latents=z.clone(), num_inference_steps=1, output_type="pt").images
    with torch.no_grad():
        assert torch.allclose(unc.generate(z), ref_u, atol=1e-6)


def test_cm_generation_is_differentiable(monkeypatch, cm_dir):
    g = use(monkeypatch, "cm-imagenet64-l2", cm_dir)
    x = g.sample_inputs(2, torch.Generator().manual_seed(0)).requires_grad_(True)
    g.generate(x).sum().backward()
    assert x.grad is not None and x.grad[:, : g.z_numel].abs().sum() > 0
    assert not any(p.requires_grad for p in g.parameters())
    assert len(g.weights_sha256) == 64 and g.inversion_options() == {"class_search": "relaxed"}


def _real_rgb(size):
    im = Image.open(SAMPLES / "fmnist-test" / "0000.png").convert("RGB")
    return torch.from_numpy(np.asarray(im.resize((size, size)), dtype=np.float32) / 255).permute(2, 0, 1)


def test_cm_inversion_of_generated_beats_real(monkeypatch, cm_dir):
    g = use(monkeypatch, "cm-imagenet64-l2", cm_dir)
    with torch.no_grad():
        fake = g.generate(g.sample_inputs(1, torch.Generator().manual_seed(7)))
    imgs = torch.cat([fake, _real_rgb(16)[None]])
    res = invert(g, imgs, settings=InversionSettings(steps=40, lr=0.1, restarts=2), seed=0)
    assert res.loss[0] < res.loss[1] / 3, res.loss


# ------------------------------------------------------------------- DDIM
def test_ddim_equals_pipeline_and_differentiable(monkeypatch, ddpm_dir):
    g = use(monkeypatch, "ddpm-cifar10", ddpm_dir)
    assert g.ddim_steps == 10 and g.image_size == 16
    pipe = diffusers.DDIMPipeline(unet=g.unet, scheduler=diffusers.DDPMScheduler.from_pretrained(str(ddpm_dir)))
    ref = pipe(batch_size=2, generator=torch.Generator().manual_seed(0), num_inference_steps=10, eta=0.0,
               output_type="np").images
    z = torch.randn((2, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = g.generate(z).permute(0, 2, 3, 1).numpy()
    assert np.allclose(out, ref, atol=1e-5), np.abs(out - ref).max()
    x = z.clone().requires_grad_(True)
    g.generate(x).sum().backward()  # through 10 checkpointed UNet calls
    assert x.grad.abs().sum() > 0


def test_ddim_inversion_of_generated_beats_real(monkeypatch, ddpm_dir):
    monkeypatch.setattr(hub.HUB_MODELS["ddpm-cifar10"], "repo", str(ddpm_dir))
    g = hub.load_hub_model("ddpm-cifar10", torch.device("cpu"), ddim_steps=2)
    with torch.no_grad():
        fake = g.generate(g.sample_inputs(1, torch.Generator().manual_seed(7)))
    res = invert(g, torch.cat([fake, _real_rgb(16)[None]]), settings=InversionSettings(steps=25, lr=0.1, restarts=1))
    assert res.loss[0] < res.loss[1] / 3, res.loss


# --------------------------------------------------------- Stable Diffusion
def test_sd_latent_and_noise_modes(monkeypatch, sd_dir):
    lat = use(monkeypatch, "sd2-latent", sd_dir)
    assert lat.input_shape == (4, 16, 16) and lat.image_size == 32
    z = lat.sample_inputs(1, torch.Generator().manual_seed(0))  # runs the tiny text-conditioned sampler
    with torch.no_grad():
        fake = lat.generate(z)
        ref = (lat.vae.decode(z / lat.vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
    assert torch.allclose(fake, ref, atol=1e-6)
    start = lat.initial_inputs(fake, 2, torch.Generator().manual_seed(0))
    assert start.shape == (2, 4, 16, 16)  # restart 0 = the encoder's latent
    res = invert(lat, torch.cat([fake, _real_rgb(32)[None]]), settings=InversionSettings(steps=30, lr=0.1, restarts=1))
    assert res.loss[0] < res.loss[1], res.loss
    noise = use(monkeypatch, "sd2-noise", sd_dir)
    assert noise.inversion_options()["mode"] == "noise"
    x = noise.sample_inputs(1, torch.Generator().manual_seed(0)).requires_grad_(True)
    noise.generate(x).sum().backward()
    assert x.grad.abs().sum() > 0


# ---------------------------------------------------------- availability
def test_unavailable_offline_messages():
    ok, reason = registry.availability("cm-imagenet64-l2")
    assert not ok and "python -m ronan download cm-imagenet64-l2" in reason and "HF_HUB_OFFLINE" in reason
    infos = {i.name: i for i in registry.list_models()}
    assert infos["sd2-latent"].state == "unavailable" and infos["sd2-latent"].source == "hub"
    assert not infos["cm-imagenet64-l2"].available and "download" in infos["cm-imagenet64-l2"].reason
    with pytest.raises(registry.ModelUnavailable, match="python -m ronan download"):
        registry.load_model("ddpm-cifar10")
    for name, m in hub.HUB_MODELS.items():
        assert m.reference != name and m.reference in registry.CATALOGUE


def test_downloadable_when_online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hub, "is_offline", lambda: False)
    state, reason = hub.hub_state("cm-cat256")
    assert state == "downloadable" and "python -m ronan download cm-cat256" in reason


def _cli(*args, **env):
    e = dict(os.environ, PYTHONPATH=str(REPO), **env)
    return subprocess.run([sys.executable, "-m", "ronan", *args], capture_output=True, text=True, cwd=REPO, env=e,
                          timeout=120)


def test_cli_offline_fails_fast_in_one_line(tmp_path):
    img = tmp_path / "x.png"
    Image.new("RGB", (64, 64), (120, 30, 200)).save(img)
    env = dict(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hf"), RONAN_CACHE_DIR=str(tmp_path / "cal"))
    p = _cli("attribute", "cm-imagenet64-l2", str(img), "--device", "cpu", **env)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "python -m ronan download cm-imagenet64-l2" in lines[0], p.stderr
    p = _cli("download", "cm-imagenet64-l2", **env)
    assert p.returncode == 2 and "HF_HUB_OFFLINE" in p.stderr and "Traceback" not in p.stderr
    p = _cli("models", "--json", **env)
    rows = {r["name"]: r for r in json.loads(p.stdout)}
    assert rows["cm-cat256"]["available"] is False and "download" in rows["cm-cat256"]["reason"]


def test_import_ronan_does_not_import_diffusers():
    code = ("import sys, ronan.studio, ronan.cli, ronan.models.registry as r; r.list_models(); "
            "print(any(m.split('.')[0] in ('diffusers', 'transformers') for m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       env=dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1"), timeout=120)
    assert p.stdout.strip() == "False", p.stderr


def test_attribute_end_to_end_on_tiny_hub_models(monkeypatch, cm_dir, ddpm_dir, cache_tmp):
    """attribute() through the registry: calibration on first use, reference pairing, verdicts."""
    from ronan.attribution import attribute_batch

    monkeypatch.setattr(hub.HUB_MODELS["cm-imagenet64-l2"], "repo", str(cm_dir))
    monkeypatch.setattr(hub.HUB_MODELS["ddpm-cifar10"], "repo", str(ddpm_dir))
    monkeypatch.setitem(hub.HUB_MODELS["ddpm-cifar10"].options, "ddim_steps", 2)
    g = registry.load_model("cm-imagenet64-l2", "cpu")
    with torch.no_grad():
        fake = g.generate(g.sample_inputs(1, torch.Generator().manual_seed(11)))[0]
    from ronan.images import to_pil
    real = Image.open(SAMPLES / "fmnist-test" / "0001.png").convert("RGB")
    # N = 5 belonging samples and 40 steps: the robust test rightly abstains ...
    out = attribute_batch([to_pil(fake), real], "cm-imagenet64-l2", steps=40, restarts=2, lr=0.1,
                          n_calibration=5, device="cpu")
    assert [o.verdict for o in out] == ["inconclusive"] * 2 and any("degenerate" in r for r in out[0].reasons)
    # ... and the paper's test decides
    out = attribute_batch([to_pil(fake), real], "cm-imagenet64-l2", steps=40, restarts=2, lr=0.1,
                          n_calibration=5, device="cpu", test="paper")
    assert out[0].reference == "ddpm-cifar10" and out[0].model_sha256 == g.weights_sha256
    assert out[0].calibrated_loss < out[1].calibrated_loss
    assert out[1].verdict == "non-belonging", [o.to_dict(history=False) for o in out]
    assert out[0].verdict == "belonging", out[0].to_dict(history=False)
    assert list(cache_tmp.glob("cm-imagenet64-l2__ddpm-cifar10__*.json"))


def test_sd_noise_equals_pipeline(monkeypatch, sd_dir):
    g = use(monkeypatch, "sd2-noise", sd_dir)
    pipe = diffusers.StableDiffusionPipeline(
        vae=g.vae, unet=g.unet, text_encoder=g.text_encoder, tokenizer=g.tokenizer,
        scheduler=diffusers.DDIMScheduler.from_pretrained(str(sd_dir / "scheduler")), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    noise = torch.randn((1, 4, 16, 16), generator=torch.Generator().manual_seed(2))
    ref = pipe("", num_inference_steps=10, guidance_scale=7.5, eta=0.0, latents=noise.clone(), height=32, width=32,
               output_type="pt").images
    with torch.no_grad():
        out = g.generate(noise)
    assert torch.allclose(out, ref, atol=1e-5), (out - ref).abs().max()


@pytest.mark.gpu
def test_mixed_precision_keeps_decisions(monkeypatch, cm_dir, ddpm_dir, cache_tmp):
    """bf16/fp16 autocast on CUDA gives the same verdicts as fp32 on the tiny models."""
    from ronan.attribution import attribute_batch
    from ronan.images import to_pil

    monkeypatch.setattr(hub.HUB_MODELS["cm-imagenet64-l2"], "repo", str(cm_dir))
    monkeypatch.setattr(hub.HUB_MODELS["ddpm-cifar10"], "repo", str(ddpm_dir))
    g = registry.load_model("cm-imagenet64-l2", "cuda")
    with torch.no_grad():
        fakes = g.generate(g.sample_inputs(3, torch.Generator().manual_seed(11))).cpu()
    reals = [Image.open(SAMPLES / "fmnist-test" / f"000{i}.png").convert("RGB") for i in range(3)]
    images = [to_pil(f) for f in fakes] + reals
    verdicts = {}
    for precision in ("fp32", "bf16", "fp16"):
        out = attribute_batch(images, "cm-imagenet64-l2", steps=100, restarts=2, lr=0.1, n_calibration=20,
                              precision=precision, device="cuda")
        verdicts[precision] = [o.verdict for o in out]
    assert verdicts["bf16"] == verdicts["fp32"] == verdicts["fp16"], verdicts


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["cm-imagenet64-l2", "ddpm-cifar10"])
def test_cuda_graphs_give_the_eager_inversion(monkeypatch, cm_dir, ddpm_dir, name):
    """Replaying the Adam steps from CUDA graphs gives the eager run's losses to fp32 rounding: the
    DDIM's backward is not deterministic on CUDA (two eager runs differ), so not bit for bit."""
    monkeypatch.setattr(hub.HUB_MODELS[name], "repo", str({"cm-imagenet64-l2": cm_dir, "ddpm-cifar10": ddpm_dir}[name]))
    g = registry.load_model(name, "cuda")
    with torch.no_grad():
        fake = g.generate(g.sample_inputs(1, torch.Generator().manual_seed(7))).cpu()
    images = torch.cat([fake, _real_rgb(16)[None]])
    settings = InversionSettings(steps=60, lr=0.1, restarts=2, plateau_steps=20)  # rows stop: several shapes
    eager = invert(g, images, settings=settings, seed=0, cuda_graphs=False)
    graphed = invert(g, images, settings=settings, seed=0, cuda_graphs=True)
    assert graphed.extra["cuda_graphs"] >= 1 and graphed.extra["cuda_graphs_failure"] is None
    assert torch.allclose(graphed.loss, eager.loss, rtol=2e-3, atol=0), (graphed.loss, eager.loss)
    assert eager.loss[0] < eager.loss[1] and graphed.loss[0] < graphed.loss[1]
