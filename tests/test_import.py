"""`erase import` and `--weights FILE`: checkpoints in their original layouts (the seed repos' DDPM ckpt.pth,
CompVis / ESD Stable Diffusion files, the official DiT .pt) become model folders every command takes.

Each kind gets a small synthetic file built here in its original layout: the ddpm-seed state dict from the
architecture's description (and checked against a forward pass written here from that description), the
CompVis UNet (and VAE / text encoder) names through an inverse of diffusers' conversion written here and
checked by the round trip, and the DiT state dict in the official key layout.
"""
from __future__ import annotations

import argparse
import json
import math

import pytest
import torch
import torch.nn.functional as F
import yaml

from erase.config import PIPELINES_DIR, load_recipe
from erase.models import load_generator
from tests.conftest import files_under

# ---------------------------------------------------------------------------------------------------------
# ddpm-seed: the DDIM codebase's conditional UNet, described independently of erase/models/ddpm_seed.py
# ---------------------------------------------------------------------------------------------------------
# The smallest config the seed's GroupNorm(32) allows: ch 32, two resolutions, attention at 8x8, 16x16 grey.
# The seed code's blocks take a 512-wide class embedding whatever ch is (so only ch = 128 runs there); this
# tiny file uses the class MLP's own width (4 * ch) in the blocks, which is the architecture at any ch.
SEED_CONFIG = {
    "data": {"dataset": "digits", "image_size": 16, "channels": 1, "n_classes": 10},
    "model": {"type": "simple", "in_channels": 1, "out_ch": 1, "ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1,
              "attn_resolutions": [8], "dropout": 0.1, "resamp_with_conv": True, "cond_drop_prob": 0.1,
              "ema": True},
    "diffusion": {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02, "num_diffusion_timesteps": 1000},
}
CIFAR_CONFIG = {  # SalUn's configs/cifar10_train.yml
    "data": {"image_size": 32, "channels": 3, "n_classes": 10},
    "model": {"ch": 128, "ch_mult": [1, 2, 2, 2], "num_res_blocks": 2, "attn_resolutions": [16],
              "resamp_with_conv": True},
}
TINY_SEED_RECIPE = {
    "name": "tiny-seed", "family": "ddpm-seed", "world": "digits", "weights": None,
    "probe": str(PIPELINES_DIR / "digits-probe"), "resolution": 16, "channels": 1, "num_classes": 10,
    "class_names": [str(i) for i in range(10)],
    "architecture": {"ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [8], "dropout": 0.1,
                     "resamp_with_conv": True, "class_embed_dim": 128, "guidance_form": "1+w"},
    "scheduler": {"num_train_timesteps": 1000, "beta_schedule": "linear", "clip_sample": False},
    "sampling": {"num_inference_steps": 2, "guidance_scale": 2.0, "eta": 0.0},
    "train": {"cond_drop": 0.1, "saliency_guidance": 2.0},
    "unlearn": {"steps": 2, "lr": 1e-3, "batch_size": 8},
    "evaluate": {"samples_per_class": 2, "forget_samples": 2, "grid_per_class": 1, "batch_size": 64},
}


def seed_shapes(config: dict, class_width: int | None = None) -> dict[str, tuple]:
    """Every tensor of the seed model, by the seed code's names: time MLP (ch -> 4ch -> 4ch), class table
    (n x ch) + null vector (ch), class MLP (ch -> 4ch -> 4ch), conv_in; per resolution num_res_blocks ResNet
    blocks (+ attention at attn_resolutions) and a stride-2 conv; middle block-attention-block; per
    resolution num_res_blocks + 1 blocks on [h, skip] (+ attention) and an upsampling conv; norm_out,
    conv_out. A ResNet block reads [time, class] through one linear (`class_width`: its class part)."""
    model, data = config["model"], config["data"]
    ch, mult, blocks, colour = model["ch"], model["ch_mult"], model["num_res_blocks"], data["channels"]
    temb = 4 * ch
    class_width = temb if class_width is None else class_width
    shapes: dict[str, tuple] = {"temb.dense.0.weight": (temb, ch), "temb.dense.0.bias": (temb,),
                                "temb.dense.1.weight": (temb, temb), "temb.dense.1.bias": (temb,),
                                "classes_emb.weight": (data["n_classes"], ch), "null_classes_emb": (ch,),
                                "cemb.dense.0.weight": (temb, ch), "cemb.dense.0.bias": (temb,),
                                "cemb.dense.1.weight": (temb, temb), "cemb.dense.1.bias": (temb,),
                                "conv_in.weight": (ch, colour, 3, 3), "conv_in.bias": (ch,)}

    def conv(name, c_out, c_in, k=3):
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (c_out, c_in, k, k), (c_out,)

    def norm(name, c):
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (c,), (c,)

    def block(name, c_in, c_out):
        norm(f"{name}.norm1", c_in)
        conv(f"{name}.conv1", c_out, c_in)
        shapes[f"{name}.temb_cemb_proj.weight"] = (c_out, temb + class_width)
        shapes[f"{name}.temb_cemb_proj.bias"] = (c_out,)
        norm(f"{name}.norm2", c_out)
        conv(f"{name}.conv2", c_out, c_out)
        if c_in != c_out:
            conv(f"{name}.nin_shortcut", c_out, c_in, 1)

    def attention(name, c):
        norm(f"{name}.norm", c)
        for part in ("q", "k", "v", "proj_out"):
            conv(f"{name}.{part}", c, c, 1)

    res, c_in, skips = data["image_size"], ch, [ch]
    for i, m in enumerate(mult):
        for j in range(blocks):
            block(f"down.{i}.block.{j}", c_in, ch * m)
            c_in = ch * m
            if res in model["attn_resolutions"]:
                attention(f"down.{i}.attn.{j}", c_in)
            skips.append(c_in)
        if i < len(mult) - 1:
            conv(f"down.{i}.downsample.conv", c_in, c_in)
            skips.append(c_in)
            res //= 2
    block("mid.block_1", c_in, c_in)
    attention("mid.attn_1", c_in)
    block("mid.block_2", c_in, c_in)
    for i in reversed(range(len(mult))):
        for j in range(blocks + 1):
            block(f"up.{i}.block.{j}", c_in + skips.pop(), ch * mult[i])
            c_in = ch * mult[i]
            if res in model["attn_resolutions"]:
                attention(f"up.{i}.attn.{j}", c_in)
        if i > 0:
            conv(f"up.{i}.upsample.conv", c_in, c_in)
            res *= 2
    norm("norm_out", c_in)
    conv("conv_out", colour, c_in)
    return shapes


def seed_state(config: dict, seed: int, class_width: int | None = None) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in seed_shapes(config, class_width).items():
        value = torch.randn(shape, generator=generator) * (0.2 if len(shape) > 1 else 0.05)
        state[key] = value + 1 if ".norm" in key and key.endswith("weight") else value
    return state


def seed_forward(state, config, x, t, c, null):
    """The architecture's forward pass from its description (sample-wise `null`: use the null vector)."""
    model = config["model"]
    ch, blocks = model["ch"], model["num_res_blocks"]

    def lin(h, name):
        return F.linear(h, state[f"{name}.weight"], state[f"{name}.bias"])

    def conv(h, name, stride=1, padding=1):
        return F.conv2d(h, state[f"{name}.weight"], state[f"{name}.bias"], stride=stride, padding=padding)

    def norm(h, name):
        return F.group_norm(h, 32, state[f"{name}.weight"], state[f"{name}.bias"], eps=1e-6)

    def swish(h):
        return h * torch.sigmoid(h)

    half = ch // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / (half - 1))
    angles = t.float()[:, None] * freqs[None]
    temb = lin(swish(lin(torch.cat([angles.sin(), angles.cos()], 1), "temb.dense.0")), "temb.dense.1")
    table = torch.where(null[:, None], state["null_classes_emb"][None], state["classes_emb.weight"][c])
    cemb = lin(swish(lin(table, "cemb.dense.0")), "cemb.dense.1")
    emb = swish(torch.cat([temb, cemb], 1))

    def block(h, name):
        y = conv(swish(norm(h, f"{name}.norm1")), f"{name}.conv1") + lin(emb, f"{name}.temb_cemb_proj")[..., None, None]
        y = conv(swish(norm(y, f"{name}.norm2")), f"{name}.conv2")
        return (conv(h, f"{name}.nin_shortcut", padding=0) if f"{name}.nin_shortcut.weight" in state else h) + y

    def attend(h, name):
        n = norm(h, f"{name}.norm")
        q, k, v = (conv(n, f"{name}.{p}", padding=0).flatten(2) for p in "qkv")  # b, c, hw
        weights = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(q.shape[1]), dim=-1)  # b, hw (query), hw (key)
        out = (v @ weights.transpose(1, 2)).reshape(h.shape)
        return h + conv(out, f"{name}.proj_out", padding=0)

    hs = [conv(x, "conv_in")]
    levels = len(model["ch_mult"])
    for i in range(levels):
        for j in range(blocks):
            h = block(hs[-1], f"down.{i}.block.{j}")
            hs.append(attend(h, f"down.{i}.attn.{j}") if f"down.{i}.attn.{j}.q.weight" in state else h)
        if i < levels - 1:
            hs.append(conv(F.pad(hs[-1], (0, 1, 0, 1)), f"down.{i}.downsample.conv", stride=2, padding=0))
    h = block(attend(block(hs[-1], "mid.block_1"), "mid.attn_1"), "mid.block_2")
    for i in reversed(range(levels)):
        for j in range(blocks + 1):
            h = block(torch.cat([h, hs.pop()], 1), f"up.{i}.block.{j}")
            h = attend(h, f"up.{i}.attn.{j}") if f"up.{i}.attn.{j}.q.weight" in state else h
        if i > 0:
            h = conv(F.interpolate(h, scale_factor=2.0, mode="nearest"), f"up.{i}.upsample.conv")
    return conv(swish(norm(h, "norm_out")), "conv_out")


def save_seed_ckpt(path, raw, ema=None, epoch=True):
    """The seed code's ckpt.pth: [model.state_dict() under DataParallel, optimizer.state_dict(), (epoch,)
    step, (EMA shadow)]."""
    optimizer = {"state": {0: {"step": torch.tensor(10.0), "exp_avg": torch.zeros(3)}},
                 "param_groups": [{"lr": 2e-4, "betas": (0.9, 0.999), "params": [0]}]}
    states = [{f"module.{k}": v for k, v in raw.items()}, optimizer] + ([12] if epoch else []) + [5000]
    torch.save(states + ([ema] if ema is not None else []), path)


@pytest.fixture
def seed_files(workdir):
    """ckpt.pth (raw + EMA), the run's config and a tiny recipe on the digits world."""
    raw, ema = seed_state(SEED_CONFIG, 1), seed_state(SEED_CONFIG, 2)
    save_seed_ckpt(workdir / "ckpt.pth", raw, ema)
    (workdir / "seed.yml").write_text(yaml.safe_dump(SEED_CONFIG))
    (workdir / "tiny-seed.yaml").write_text(yaml.safe_dump(TINY_SEED_RECIPE))
    return {"raw": raw, "ema": ema, "ckpt": workdir / "ckpt.pth", "config": workdir / "seed.yml",
            "recipe": workdir / "tiny-seed.yaml"}


def import_seed(cli, files, out, *extra):
    return cli("import", files["ckpt"], "--as", "ddpm-seed", "--config", files["config"], "--recipe", files["recipe"],
               "--out", out, *extra)


def test_seed_family_has_the_seed_code_tensors_at_salun_cifar10_size():
    from erase.models.ddpm_seed import build_unet

    with torch.device("meta"):  # shapes only
        model = build_unet(load_recipe("ddpm-cifar10"))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == seed_shapes(CIFAR_CONFIG, class_width=512)
    assert round(sum(v.numel() for v in model.parameters()) / 1e6, 1) == 38.6


@pytest.mark.slow  # torch.utils.checkpoint's first use imports torch's compiler stack (~20 s on a loaded machine)
def test_seed_unet_gradient_checkpointing_gives_the_same_gradients():
    from erase.models.ddpm_seed import SeedConditionalUNet

    torch.manual_seed(0)
    model = SeedConditionalUNet(sample_size=16, in_channels=1, out_channels=1, ch=32, ch_mult=[1, 2],
                                num_res_blocks=1, attn_resolutions=[8], dropout=0.0, class_embed_dim=128)
    x, t, c = torch.randn(2, 1, 16, 16), torch.tensor([3, 700]), torch.tensor([1, 10])

    def gradients():
        model.zero_grad()
        model(x, t, class_labels=c).sample.square().mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = gradients()
    model.enable_gradient_checkpointing()
    checkpointed = gradients()
    assert all(torch.allclose(plain[n], checkpointed[n], atol=1e-6) for n in plain)


def test_esd_selections_find_the_seed_unets_class_path():
    from erase.methods.conditioning import CrossAttention, NonCrossAttention
    from erase.models.ddpm_seed import build_unet

    with torch.device("meta"):
        model = build_unet(load_recipe(str(PIPELINES_DIR / "ddpm-cifar10.yaml")))
    cross = CrossAttention({}).chosen(model)
    assert {"classes_emb.weight", "null_classes_emb", "cemb.dense.1.bias", "down.2.block.1.temb_cemb_proj.weight",
            "mid.block_2.temb_cemb_proj.bias"} <= cross
    assert all(n.split(".")[0] in ("classes_emb", "null_classes_emb", "cemb") or ".temb_cemb_proj." in n for n in cross)
    rest = NonCrossAttention({}).chosen(model)
    assert not rest & cross and not any(n.startswith(("temb.", "conv_out.", "norm_out.")) for n in rest)
    assert "down.0.block.0.conv1.weight" in rest


def test_seed_import_matches_the_reference_forward_and_guidance(cli, workdir, seed_files):
    code, out, err = import_seed(cli, seed_files, workdir / "model")
    assert code == 0, err
    assert "EMA weights" in out and "--model" in out
    folder = workdir / "model"
    for name in ("model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                 "scheduler/scheduler_config.json", "erase_recipe.yaml", "IMPORT.json"):
        assert (folder / name).is_file(), name
    record = json.loads((folder / "IMPORT.json").read_text())
    assert record["kind"] == "ddpm-seed" and record["weights"].startswith("EMA")
    bundle = load_generator(load_recipe(str(folder)))  # strict, safetensors-only reload
    unet = bundle.denoiser
    assert not unet.training and unet.config.guidance_form == "1+w"

    torch.manual_seed(0)
    x, t, c = torch.randn(3, 1, 16, 16), torch.tensor([0, 417, 999]), torch.tensor([0, 4, 9])
    ema = seed_files["ema"]
    with torch.no_grad():
        ours = unet(x, t, class_labels=c).sample
        null = unet(x, t, class_labels=torch.full_like(c, 10)).sample
        guided = bundle.pipeline.predict_noise(x, torch.tensor(417), c, 2.0)  # the sampler: one t per step
    expected = seed_forward(ema, SEED_CONFIG, x, t, c, torch.zeros(3, dtype=torch.bool))
    expected_null = seed_forward(ema, SEED_CONFIG, x, t, c, torch.ones(3, dtype=torch.bool))
    assert torch.allclose(ours, expected, atol=1e-4, rtol=1e-4), (ours - expected).abs().max()
    assert torch.allclose(null, expected_null, atol=1e-4, rtol=1e-4)
    t_mid = torch.full((3,), 417)
    expected_guided = (3 * seed_forward(ema, SEED_CONFIG, x, t_mid, c, torch.zeros(3, dtype=torch.bool))
                       - 2 * seed_forward(ema, SEED_CONFIG, x, t_mid, c, torch.ones(3, dtype=torch.bool)))
    assert torch.allclose(guided, expected_guided, atol=1e-4, rtol=1e-4)  # (1 + w) eps(c) - w eps(null), w = 2
    # the task's guided prediction (SalUn's saliency loss) uses the same form
    from erase.tasks.denoising import denoising_task

    with torch.no_grad():
        task_guided = denoising_task(bundle).guided(unet, x, t_mid, c, 2.0)
    assert torch.allclose(task_guided, guided, atol=1e-5)

    # --no-ema imports the raw weights
    assert import_seed(cli, seed_files, workdir / "raw", "--no-ema")[0] == 0
    raw_unet = load_generator(load_recipe(str(workdir / "raw"))).denoiser
    assert torch.equal(raw_unet.state_dict()["conv_in.weight"], seed_files["raw"]["conv_in.weight"])


@pytest.mark.slow
def test_seed_import_samples_unlearns_and_loads_on_the_fly(cli, workdir, seed_files):
    assert import_seed(cli, seed_files, workdir / "model")[0] == 0
    code, _, err = cli("sample", "--model", workdir / "model", "--classes", "0-2", "--per-class", "1", "--out", "a.png")
    assert code == 0, err
    # --weights FILE converts on load: the same samples as the imported folder (the recipe's architecture)
    code, _, err = cli("sample", "--model", seed_files["recipe"], "--weights", seed_files["ckpt"], "--classes", "0-2",
                       "--per-class", "1", "--out", "b.png")
    assert code == 0, err
    assert (workdir / "a.png").read_bytes() == (workdir / "b.png").read_bytes()
    code, out, err = cli("class", "--model", workdir / "model", "--forget", "0", "--method", "ga", "--steps", "1",
                         "--out", "run")
    assert code == 0, err
    report = json.loads((workdir / "run" / "EVAL.json").read_text())
    assert set(report["metrics"]["unlearned"]["per_class_accuracy"]) == {str(i) for i in range(10)}
    assert load_recipe(str(workdir / "run" / "model")).family == "ddpm-seed"


def test_seed_checkpoint_with_ch_other_than_128_is_explained(cli, workdir, seed_files):
    """The seed code's blocks take 512 class channels whatever ch is: at ch 32 its file cannot run anywhere."""
    save_seed_ckpt(workdir / "odd.pth", seed_state(SEED_CONFIG, 3, class_width=512), epoch=False)
    before = files_under(workdir)
    code, _, err = cli("import", workdir / "odd.pth", "--as", "ddpm-seed", "--config", seed_files["config"],
                       "--recipe", seed_files["recipe"], "--out", workdir / "m")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "512-wide class embedding" in err and "temb_cemb_proj" in err
    assert files_under(workdir) == before


# ---------------------------------------------------------------------------------------------------------
# bad input: one line, exit 2, nothing written
# ---------------------------------------------------------------------------------------------------------
def _bad_files(workdir, seed_files):
    raw = seed_files["raw"]
    torch.save({"model": raw, "args": argparse.Namespace(model="DiT-XL/2")}, workdir / "namespace.pt")
    missing = dict(raw)
    missing.pop("mid.attn_1.q.weight")
    torch.save(missing, workdir / "missing.pt")
    torch.save({**raw, "logvar": torch.zeros(1000)}, workdir / "extra.pt")
    torch.save([1, 2, 3], workdir / "list.pt")
    (workdir / "text.pt").write_text("not a checkpoint")
    return {"namespace.pt": "argparse.Namespace", "missing.pt": "1 missing (mid.attn_1.q.weight)",
            "extra.pt": "1 unexpected (logvar)", "list.pt": "unknown layout", "text.pt": "neither a PyTorch"}


def test_bad_checkpoints_fail_in_one_line_and_write_nothing(cli, workdir, seed_files):
    for name, message in _bad_files(workdir, seed_files).items():
        before = files_under(workdir)
        code, out, err = cli("import", workdir / name, "--as", "ddpm-seed", "--config", seed_files["config"],
                             "--recipe", seed_files["recipe"], "--out", workdir / "m")
        assert code == 2, (name, err)
        assert len(err.strip().splitlines()) == 1 and message in err, (name, err)
        assert files_under(workdir) == before and not (workdir / "m").exists(), name
        assert not list(workdir.glob(".m*")), name


def test_existing_out_and_bad_paths_are_refused(cli, workdir, seed_files):
    (workdir / "m").mkdir()
    (workdir / "m" / "keep.txt").write_text("mine")
    before = files_under(workdir)
    cases = [(["--out", workdir / "m"], "already exists"),
             (["--out", workdir / "n", "--base", workdir / "nowhere"], "is not a folder")]
    for extra, message in cases:
        code, _, err = cli("import", seed_files["ckpt"], "--as", "ddpm-seed", "--recipe", seed_files["recipe"],
                           "--config", seed_files["config"], *extra)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    code, _, err = cli("import", workdir / "absent.pth", "--as", "ddpm-seed", "--out", workdir / "n")
    assert code == 2 and "is not a file" in err
    code, _, err = cli("import", seed_files["ckpt"], "--as", "ddpm", "--out", workdir / "n")
    assert code == 2 and "invalid choice" in err
    assert files_under(workdir) == before
    # --overwrite replaces the folder, atomically
    assert import_seed(cli, seed_files, workdir / "m", "--overwrite")[0] == 0
    assert not (workdir / "m" / "keep.txt").exists() and (workdir / "m" / "IMPORT.json").is_file()


def test_import_kinds_listed_by_the_parser_are_the_converters():
    from erase.cli import IMPORT_KINDS
    from erase.models.convert import KINDS

    assert set(IMPORT_KINDS) == set(KINDS)


# ---------------------------------------------------------------------------------------------------------
# sd: CompVis names, written here as the inverse of the names diffusers' converter reads (the round trip
# through that converter checks this inverse), on the tiny SD stack
# ---------------------------------------------------------------------------------------------------------
LDM_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1", "norm2": "out_layers.0",
              "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
LDM_UNET_FIXED = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
                  "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}


def ldm_unet_name(key: str, layers: int, attended_up_blocks: set[int]) -> str:
    """A diffusers UNet2DConditionModel key -> the LDM UNetModel key (SD 1.x): input_blocks (conv_in, then per
    down block `layers` x [resnet, attention] and a downsampler), middle_block (resnet, attention, resnet),
    output_blocks (per up block layers + 1 x [resnet, attention, upsampler on the last]), out."""
    import re

    def resnet(rest):
        part, _, tail = rest.partition(".")
        return f"{LDM_RESNET[part]}.{tail}"

    for old, new in LDM_UNET_FIXED.items():
        if key.startswith(old + "."):
            return new + key[len(old):]
    if m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        index = 1 + int(m[1]) * (layers + 1) + int(m[3])
        return f"input_blocks.{index}.0.{resnet(m[4])}" if m[2] == "resnets" else f"input_blocks.{index}.1.{m[4]}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"input_blocks.{(int(m[1]) + 1) * (layers + 1)}.0.op.{m[2]}"
    if m := re.fullmatch(r"mid_block\.(resnets|attentions)\.(\d)\.(.+)", key):
        index = {"resnets0": 0, "attentions0": 1, "resnets1": 2}[m[1] + m[2]]
        return f"middle_block.{index}.{resnet(m[3]) if m[1] == 'resnets' else m[3]}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        index = int(m[1]) * (layers + 1) + int(m[3])
        return f"output_blocks.{index}.0.{resnet(m[4])}" if m[2] == "resnets" else f"output_blocks.{index}.1.{m[4]}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        slot = 2 if int(m[1]) in attended_up_blocks else 1
        return f"output_blocks.{int(m[1]) * (layers + 1) + layers}.{slot}.conv.{m[2]}"
    raise AssertionError(f"no LDM name for {key}")


def ldm_unet_state(unet) -> dict[str, torch.Tensor]:
    import re

    state = unet.state_dict()
    attended = {int(m[1]) for k in state if (m := re.match(r"up_blocks\.(\d+)\.attentions\.", k))}
    return {ldm_unet_name(k, unet.config.layers_per_block, attended): v.clone() for k, v in state.items()}


def ldm_vae_state(vae) -> dict[str, torch.Tensor]:
    """AutoencoderKL keys -> LDM's (encoder.down.i.block.j, mid.block_1/attn_1/block_2, decoder.up reversed,
    norm_out; the mid attention's linears as 1x1 convs)."""
    import re

    ups = len(vae.config.up_block_types)
    attention = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    out = {}
    for key, value in vae.state_dict().items():
        new = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
        new = re.sub(r"down_blocks\.(\d+)\.resnets\.", r"down.\1.block.", new)
        new = re.sub(r"down_blocks\.(\d+)\.downsamplers\.0\.", r"down.\1.downsample.", new)
        new = re.sub(r"up_blocks\.(\d+)\.resnets\.", lambda m: f"up.{ups - 1 - int(m[1])}.block.", new)
        new = re.sub(r"up_blocks\.(\d+)\.upsamplers\.0\.", lambda m: f"up.{ups - 1 - int(m[1])}.upsample.", new)
        new = re.sub(r"mid_block\.resnets\.(\d)\.", lambda m: f"mid.block_{int(m[1]) + 1}.", new)
        if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", new):
            new = f"{m[1]}.mid.attn_1.{attention[m[2]]}.{m[3]}"
            value = value[..., None, None] if m[3] == "weight" and m[2] != "group_norm" else value
        out[new] = value.clone()
    return out


def ldm_whole_state(unet, vae, text_encoder) -> dict[str, torch.Tensor]:
    """A whole LatentDiffusion checkpoint: the three models under their prefixes, plus the buffers such files
    carry (diffusion schedule, CLIP position ids)."""
    state = {f"model.diffusion_model.{k}": v for k, v in ldm_unet_state(unet).items()}
    state.update({f"first_stage_model.{k}": v for k, v in ldm_vae_state(vae).items()})
    state.update({f"cond_stage_model.transformer.{k}": v.clone() for k, v in text_encoder.state_dict().items()})
    state["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    state["betas"] = torch.linspace(0.00085, 0.012, 1000)
    state["alphas_cumprod"] = torch.cumprod(1 - state["betas"], 0)
    return state


@pytest.fixture
def tiny_sd(workdir):
    """A tiny SD base folder (the test stack) and another random tiny stack, the source of the files."""
    from erase.models.sd import apply_tiny

    recipe = apply_tiny(load_recipe("sd-v1-4"))
    torch.manual_seed(0)
    load_generator(recipe, init="random").save(workdir / "base")
    torch.manual_seed(1)
    return workdir / "base", load_generator(recipe, init="random").pipeline


def assert_same(module, state):
    ours = module.state_dict()
    assert all(torch.equal(ours[k], state[k]) for k in state) and set(ours) <= set(state)


def test_sd_unet_only_files_apply_to_the_base(cli, workdir, tiny_sd):
    from safetensors.torch import save_file

    base, source = tiny_sd
    compvis = ldm_unet_state(source.unet)
    torch.save(compvis, workdir / "esd-unet.pt")  # ESD / SalUn: the UNet's CompVis state dict
    save_file({f"model.diffusion_model.{k}": v.contiguous() for k, v in compvis.items()},
              workdir / "prefixed.safetensors")
    torch.save(source.unet.state_dict(), workdir / "diffusers-unet.pt")  # ESD's released diffusers-*-UNET.pt
    base_bundle = load_generator(load_recipe(str(base)))
    for name in ("esd-unet.pt", "prefixed.safetensors", "diffusers-unet.pt"):
        code, out, err = cli("import", workdir / name, "--as", "sd", "--base", base, "--out", workdir / name[:4])
        assert code == 0, (name, err)
        bundle = load_generator(load_recipe(str(workdir / name[:4])))  # strict reload
        assert_same(bundle.denoiser, source.unet.state_dict())
        assert_same(bundle.pipeline.text_encoder, base_bundle.pipeline.text_encoder.state_dict())
        assert_same(bundle.pipeline.vae, base_bundle.pipeline.vae.state_dict())
        assert bundle.recipe.name == "sd-v1-4-tiny"  # the base's recipe
    # a key the UNet does not have is named, and nothing is written
    torch.save({**compvis, "input_blocks.99.0.weight": torch.zeros(2)}, workdir / "extra.pt")
    code, _, err = cli("import", workdir / "extra.pt", "--as", "sd", "--base", base, "--out", workdir / "x")
    assert code == 2 and "input_blocks.99.0.weight" in err and not (workdir / "x").exists()
    missing = dict(compvis)
    missing.pop("middle_block.1.proj_in.weight")
    torch.save(missing, workdir / "missing.pt")
    code, _, err = cli("import", workdir / "missing.pt", "--as", "sd", "--base", base, "--out", workdir / "x")
    assert code == 2 and "mid_block.attentions.0.proj_in.weight" in err and len(err.strip().splitlines()) == 1


def test_sd_whole_compvis_checkpoint_takes_every_component_from_the_file(cli, workdir, tiny_sd):
    base, source = tiny_sd
    whole = ldm_whole_state(source.unet, source.vae, source.text_encoder)
    # LatentDiffusion's EMA copy of the UNet: flattened names under model_ema., plus its bookkeeping
    ema_copy = {"model_ema.diffusion_model" + k.replace(".", ""): v + 1 for k, v in ldm_unet_state(source.unet).items()}
    whole.update(ema_copy)
    whole.update({"model_ema.decay": torch.tensor(0.9999), "model_ema.num_updates": torch.tensor(470000)})
    ema_unet = {k: v + 1 for k, v in source.unet.state_dict().items()}
    torch.save({"state_dict": whole, "global_step": 470000}, workdir / "model.ckpt")
    code, out, err = cli("import", workdir / "model.ckpt", "--as", "sd", "--base", base, "--out", workdir / "m")
    assert code == 0, err
    bundle = load_generator(load_recipe(str(workdir / "m")))
    assert_same(bundle.denoiser, ema_unet)  # EMA UNet weights by default
    assert_same(bundle.pipeline.vae, source.vae.state_dict())
    assert_same(bundle.pipeline.text_encoder, source.text_encoder.state_dict())
    assert cli("import", workdir / "model.ckpt", "--as", "sd", "--base", base, "--out", workdir / "raw",
               "--no-ema")[0] == 0
    assert_same(load_generator(load_recipe(str(workdir / "raw"))).denoiser, source.unet.state_dict())
    whole["cond_stage_model.transformer.extra_head.weight"] = torch.zeros(3)
    torch.save(whole, workdir / "extra.ckpt")
    code, _, err = cli("import", workdir / "extra.ckpt", "--as", "sd", "--base", base, "--out", workdir / "x")
    assert code == 2 and "extra_head" in err and not (workdir / "x").exists()


@pytest.mark.slow
def test_sd_import_samples_and_erases_a_concept(cli, workdir, tiny_sd):
    base, source = tiny_sd
    torch.save(ldm_unet_state(source.unet), workdir / "esd-unet.pt")
    assert cli("import", workdir / "esd-unet.pt", "--as", "sd", "--base", base, "--out", workdir / "m")[0] == 0
    code, _, err = cli("sample", "--model", workdir / "m", "--prompts", "a photo", "--per-class", "1", "--out", "g.png")
    assert code == 0, err
    # --weights FILE on the base model: applied on load, the same images as the imported folder
    code, _, err = cli("sample", "--model", base, "--weights", workdir / "esd-unet.pt", "--prompts", "a photo",
                       "--per-class", "1", "--out", "h.png")
    assert code == 0, err
    assert (workdir / "g.png").read_bytes() == (workdir / "h.png").read_bytes()
    code, _, err = cli("concept", "--model", workdir / "m", "--prompt", "van gogh style", "--method", "esd",
                       "--steps", "1", "--out", "run")
    assert code == 0, err
    assert (workdir / "run" / "EVAL.json").is_file() and (workdir / "run" / "model" / "unet").is_dir()


def test_sd_needs_a_base(cli, workdir, monkeypatch, tiny_sd):
    monkeypatch.setenv("HOME", str(workdir))  # sd-v1-4's folder is under ~/.cache, its HF cache too
    monkeypatch.setenv("HF_HUB_CACHE", str(workdir / "no-cache"))
    torch.save(ldm_unet_state(tiny_sd[1].unet), workdir / "esd-unet.pt")
    code, _, err = cli("import", workdir / "esd-unet.pt", "--as", "sd", "--out", workdir / "m")
    assert code == 2 and "--base" in err and len(err.strip().splitlines()) == 1 and not (workdir / "m").exists()


# ---------------------------------------------------------------------------------------------------------
# dit: the official DiT state dict, by its key names and shapes
# ---------------------------------------------------------------------------------------------------------
TINY_DIT_RECIPE = {
    "name": "tiny-dit", "family": "dit", "world": "digits", "weights": None,
    "probe": str(PIPELINES_DIR / "digits-probe"), "resolution": 16, "channels": 1, "num_classes": 10,
    "class_names": [str(i) for i in range(10)], "architecture": {},
    "scheduler": {"num_train_timesteps": 1000, "beta_schedule": "linear", "clip_sample": False},
    "sampling": {"num_inference_steps": 2, "guidance_scale": 2.0, "eta": 0.0},
    "train": {"cond_drop": 0.1, "saliency_guidance": 1.0},
    "unlearn": {"steps": 2, "lr": 1e-3, "batch_size": 8},
    "evaluate": {"samples_per_class": 2, "forget_samples": 2, "grid_per_class": 1, "batch_size": 64},
}
TINY_VAE = {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "block_out_channels": [8, 8],
            "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2,
            "norm_num_groups": 4, "sample_size": 16, "scaling_factor": 0.5}


def sincos_2d(dim: int, grid: int) -> torch.Tensor:
    """DiT's fixed position embedding (from MAE): half the channels sin/cos of the column, half of the row."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64),
                                indexing="ij")

    def one(pos):
        angles = pos.reshape(-1)[:, None] * omega[None]
        return torch.cat([angles.sin(), angles.cos()], 1)

    return torch.cat([one(cols), one(rows)], 1).float()[None]


def official_dit_state(seed, depth=2, hidden=32, patch=4, channels=1, size=16, classes=10, learn_sigma=True,
                       pos_embed=True) -> dict[str, torch.Tensor]:
    """DiT(input_size=size, patch_size=patch, in_channels=channels, hidden_size=hidden, depth=depth,
    num_classes=classes, learn_sigma=learn_sigma).state_dict(), by the official names and shapes."""
    out_channels = 2 * channels if learn_sigma else channels
    shapes = {"x_embedder.proj.weight": (hidden, channels, patch, patch), "x_embedder.proj.bias": (hidden,),
              "t_embedder.mlp.0.weight": (hidden, 256), "t_embedder.mlp.0.bias": (hidden,),
              "t_embedder.mlp.2.weight": (hidden, hidden), "t_embedder.mlp.2.bias": (hidden,),
              "y_embedder.embedding_table.weight": (classes + 1, hidden),
              "final_layer.linear.weight": (patch * patch * out_channels, hidden),
              "final_layer.linear.bias": (patch * patch * out_channels,),
              "final_layer.adaLN_modulation.1.weight": (2 * hidden, hidden),
              "final_layer.adaLN_modulation.1.bias": (2 * hidden,)}
    for i in range(depth):
        for name, (rows, cols) in {"attn.qkv": (3 * hidden, hidden), "attn.proj": (hidden, hidden),
                                   "mlp.fc1": (4 * hidden, hidden), "mlp.fc2": (hidden, 4 * hidden),
                                   "adaLN_modulation.1": (6 * hidden, hidden)}.items():
            shapes[f"blocks.{i}.{name}.weight"], shapes[f"blocks.{i}.{name}.bias"] = (rows, cols), (rows,)
    generator = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(shape, generator=generator) * 0.1 for k, shape in shapes.items()}
    if pos_embed:
        state["pos_embed"] = sincos_2d(hidden, size // patch)
    return state


@pytest.fixture
def dit_files(workdir):
    (workdir / "tiny-dit.yaml").write_text(yaml.safe_dump(TINY_DIT_RECIPE))
    (workdir / "heads.yaml").write_text(yaml.safe_dump({"num_attention_heads": 2}))
    raw, ema = official_dit_state(1), official_dit_state(2)
    torch.save(ema, workdir / "DiT-tiny.pt")  # the released files: the EMA state dict alone
    return {"raw": raw, "ema": ema, "recipe": workdir / "tiny-dit.yaml", "config": workdir / "heads.yaml"}


def import_dit(cli, workdir, file, out, files, *extra):
    return cli("import", workdir / file, "--as", "dit", "--config", files["config"], "--recipe", files["recipe"],
               "--out", workdir / out, *extra)


def test_dit_official_state_dict_maps_onto_diffusers(cli, workdir, dit_files):
    code, out, err = import_dit(cli, workdir, "DiT-tiny.pt", "m", dit_files)
    assert code == 0, err
    bundle = load_generator(load_recipe(str(workdir / "m")))  # strict reload, DiTPipeline layout
    transformer, ema = bundle.denoiser, dit_files["ema"]
    assert transformer.config.out_channels == 2 and transformer.config.num_embeds_ada_norm == 10  # learned sigma
    state = transformer.state_dict()
    q, k, v = ema["blocks.1.attn.qkv.weight"].chunk(3)
    assert torch.equal(state["transformer_blocks.1.attn1.to_k.weight"], k)
    assert torch.equal(state["transformer_blocks.1.attn1.to_v.weight"], v)
    for i in range(2):
        assert torch.equal(state[f"transformer_blocks.{i}.norm1.emb.class_embedder.embedding_table.weight"],
                           ema["y_embedder.embedding_table.weight"])
        assert torch.equal(state[f"transformer_blocks.{i}.norm1.linear.weight"],
                           ema[f"blocks.{i}.adaLN_modulation.1.weight"])
    assert torch.equal(state["proj_out_2.weight"], ema["final_layer.linear.weight"])
    # a training checkpoint: EMA unless --no-ema
    torch.save({"model": dit_files["raw"], "ema": ema}, workdir / "0400000.pt")
    assert import_dit(cli, workdir, "0400000.pt", "raw", dit_files, "--no-ema")[0] == 0
    raw_state = load_generator(load_recipe(str(workdir / "raw"))).denoiser.state_dict()
    assert torch.equal(raw_state["pos_embed.proj.weight"], dit_files["raw"]["x_embedder.proj.weight"])


@pytest.mark.slow
def test_dit_import_samples_and_unlearns(cli, workdir, dit_files):
    assert import_dit(cli, workdir, "DiT-tiny.pt", "m", dit_files)[0] == 0
    code, _, err = cli("sample", "--model", workdir / "m", "--classes", "0-2", "--per-class", "1", "--out", "g.png")
    assert code == 0, err
    code, _, err = cli("class", "--model", workdir / "m", "--forget", "3", "--method", "ga", "--steps", "1",
                       "--out", "run")
    assert code == 0, err
    assert json.loads((workdir / "run" / "EVAL.json").read_text())["metrics"]["unlearned"]["per_class_accuracy"]


def test_dit_latent_model_takes_its_vae_from_base(cli, workdir, dit_files):
    from diffusers import AutoencoderKL

    latent_recipe = {**TINY_DIT_RECIPE, "name": "tiny-latent-dit", "world": None, "probe": None, "channels": 3,
                     "architecture": {"vae": TINY_VAE}}
    (workdir / "latent.yaml").write_text(yaml.safe_dump(latent_recipe))
    torch.save(official_dit_state(3, patch=2, channels=4, size=8), workdir / "latent.pt")
    args = ["import", workdir / "latent.pt", "--as", "dit", "--config", dit_files["config"], "--recipe",
            workdir / "latent.yaml", "--out", workdir / "m"]
    code, _, err = cli(*args)
    assert code == 2 and "needs its VAE" in err and len(err.strip().splitlines()) == 1
    torch.manual_seed(0)
    AutoencoderKL(**TINY_VAE).save_pretrained(workdir / "sd-vae")  # an SD-VAE folder (safetensors)
    code, _, err = cli(*args, "--base", workdir / "sd-vae")
    assert code == 0, err
    code, _, err = cli("sample", "--model", workdir / "m", "--classes", "0,1", "--per-class", "1", "--out", "g.png")
    assert code == 0, err
    # a truncated official state dict names what is missing
    broken = official_dit_state(3)
    broken.pop("blocks.1.mlp.fc2.bias")
    torch.save(broken, workdir / "broken.pt")
    code, _, err = import_dit(cli, workdir, "broken.pt", "x", dit_files)
    assert code == 2 and "blocks.1.mlp.fc2.bias" in err and not (workdir / "x").exists()
