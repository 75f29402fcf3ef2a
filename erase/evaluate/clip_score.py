"""CLIP score of generated images against their own prompts: the mean of 100 * max(cos(image, text), 0)
(Hessel et al. 2021, torchmetrics' CLIPScore), with a CLIP model the user names: `--clip DIR`, a local
transformers CLIPModel folder (config.json with text and vision configs, safetensors weights, tokenizer,
preprocessor_config.json). Stable Diffusion's text encoder has no image tower, so without `--clip` the score
is skipped and EVAL.json says why. Never downloaded.

`check_clip_folder` is light (no torch): commands call it before the run folder and the heavy imports.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from erase.errors import UserError

if TYPE_CHECKING:
    import torch

# transformers recomputes these buffers; older checkpoints still carry them
RECOMPUTED_BUFFERS = ("text_model.embeddings.position_ids", "vision_model.embeddings.position_ids")
OPENAI_MEAN, OPENAI_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
SKIPPED = ("no CLIP model given: `--clip DIR` names a local CLIP folder (transformers CLIPModel with tokenizer "
           "and preprocessor_config.json); Stable Diffusion's text encoder has no image tower to score with")


def check_clip_folder(path: str | Path) -> str:
    """The folder, resolved, if it looks like a whole CLIPModel folder; else the one-line UserError."""
    from erase.models.io import _weight_files, check_weight_files

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise UserError(f"--clip {path}: no such folder (a local CLIP model folder: config.json, model.safetensors, "
                        f"tokenizer files, preprocessor_config.json)")
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"--clip {folder}: cannot read config.json ({exc})") from None
    if not isinstance(config, dict) or "vision_config" not in config or "text_config" not in config:
        raise UserError(f"--clip {folder}: config.json is not a CLIPModel's (it needs text_config and "
                        f"vision_config: a text encoder alone cannot score images)")
    for name in ("preprocessor_config.json", "tokenizer_config.json"):
        if not (folder / name).is_file():
            raise UserError(f"--clip {folder}: {name} is missing (save the processor with the model)")
    _weight_files(folder)
    check_weight_files(folder)
    return str(folder.resolve())


class ClipScorer:
    """A CLIPModel loaded strictly from safetensors, with its tokenizer and its image normalisation."""

    def __init__(self, folder: str | Path):
        from transformers import AutoTokenizer, CLIPConfig, CLIPModel

        from erase.models.io import check_state_dict, read_state_dict

        self.folder = Path(folder)
        try:
            model = CLIPModel(CLIPConfig.from_pretrained(str(self.folder)))
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        except (OSError, TypeError, ValueError) as exc:
            raise UserError(f"--clip {self.folder}: cannot build the CLIP model or its tokenizer ({exc})") from None
        state = read_state_dict(self.folder)
        for key in RECOMPUTED_BUFFERS:
            if key in state and key not in model.state_dict():
                state.pop(key)
        check_state_dict(model, state, self.folder)
        model.load_state_dict(state, strict=True)
        self.model = model.eval().requires_grad_(False)
        processor = json.loads((self.folder / "preprocessor_config.json").read_text())
        self.mean = tuple(processor.get("image_mean", OPENAI_MEAN))
        self.std = tuple(processor.get("image_std", OPENAI_STD))
        self.size = int(model.config.vision_config.image_size)

    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> the vision tower's input: resized (bicubic) to its size, normalised."""
        import torch
        import torch.nn.functional as F

        x = (images.float().clamp(-1, 1) + 1) / 2
        x = F.interpolate(x, size=(self.size, self.size), mode="bicubic", align_corners=False).clamp(0, 1)
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return (x - mean) / std

    def scores(self, images: torch.Tensor, prompts: list[str], index: torch.Tensor,
               batch_size: int = 64) -> torch.Tensor:
        """100 * max(cos, 0) of each image with its prompt (prompts[index[k]] for image k)."""
        import torch

        def features(output) -> torch.Tensor:
            pooled = output if isinstance(output, torch.Tensor) else output.pooler_output
            return torch.nn.functional.normalize(pooled.float(), dim=-1)

        with torch.no_grad():
            tokens = self.tokenizer(list(prompts), padding=True, truncation=True, return_tensors="pt")
            text = features(self.model.get_text_features(input_ids=tokens["input_ids"],
                                                         attention_mask=tokens["attention_mask"]))
            out = []
            for start in range(0, len(images), batch_size):
                pixels = self.pixels(images[start:start + batch_size])
                image = features(self.model.get_image_features(pixel_values=pixels))
                out.append(100 * (image * text[index[start:start + batch_size]]).sum(-1).clamp_min(0))
        return torch.cat(out)

    def metrics(self, images: torch.Tensor, prompts: list[str], index: torch.Tensor) -> dict[str, float]:
        scores = self.scores(images, prompts, index)
        return {"clip_score": float(scores.mean()), "clip_score_images": len(scores)}
