"""Denoising losses for diffusion models (DDPM, DiT, Stable Diffusion) behind one adapter interface.

The task only knows epsilon-prediction at random timesteps. What differs between families (how the model
is called, what conditioning looks like, whether images go through a VAE first) sits in a
`DenoiserAdapter` that each family file in erase/models provides.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from erase.errors import UserError
from erase.models.pipeline import epsilon_part, guide, unguided
from erase.tasks.base import Task


class DenoiserAdapter:
    """How the denoising task talks to one model family. Conditioning is opaque to the task."""

    guidance_form = "standard"  # what a guidance scale means for this model (erase.models.pipeline.GUIDANCE_FORMS)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] to the space the denoiser works in (identity for pixel models)."""
        return images

    def condition(self, batch) -> torch.Tensor:
        """The conditioning of a batch, ready for `predict`."""
        raise NotImplementedError

    def relabel_condition(self, batch) -> torch.Tensor:
        """The conditioning that forget samples are redirected to (another class, an anchor prompt)."""
        raise NotImplementedError

    def null_condition(self, cond: torch.Tensor) -> torch.Tensor:
        """The unconditional branch of classifier-free guidance, same batch size as `cond`."""
        raise NotImplementedError

    def esd_conditions(self, batch, prompts: str = "concept"):
        """(trained, neutral, concept) conditionings of ESD's target eps*(neutral) - eta (eps*(concept) -
        eps*(empty)); neutral None = the empty prompt. Class-conditional models: the class is the concept and
        the prompt, the null class the neutral (`prompts` changes nothing)."""
        cond = self.condition(batch)
        return cond, None, cond

    def drop_condition(self, cond: torch.Tensor, probability: float) -> torch.Tensor:
        """Replace a random fraction of the conditioning by the null condition (CFG training)."""
        if probability <= 0:
            return cond
        drop = torch.rand(cond.shape[0], device=cond.device) < probability
        null = self.null_condition(cond)
        return torch.where(drop.view(-1, *([1] * (cond.dim() - 1))), null, cond)

    def predict(self, model, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The model's epsilon prediction (only the epsilon channels for learned-sigma models)."""
        raise NotImplementedError


@torch.no_grad()
def vae_latents(vae, images: torch.Tensor) -> torch.Tensor:
    """Images -> the frozen VAE's latents times its scaling factor; pixel-space models (no VAE) pass through."""
    if vae is None:
        return images
    vae.to(images.device)
    return vae.encode(images.to(vae.dtype)).latent_dist.sample() * vae.config.scaling_factor


class ClassLabelAdapter(DenoiserAdapter):
    """Class-conditional denoisers (DDPM UNet, DiT): the conditioning is a class id, the null class (id K)
    is the unconditional branch. Latent models encode images with their frozen VAE (times its scaling
    factor); learned-sigma outputs give their epsilon half. `guidance_form`: the denoiser's."""

    def __init__(self, num_classes: int, vae=None, guidance_form: str = "standard"):
        self.num_classes = num_classes
        self.vae = vae
        self.guidance_form = guidance_form

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return vae_latents(self.vae, images)

    def condition(self, batch) -> torch.Tensor:
        return batch["label"]

    def relabel_condition(self, batch) -> torch.Tensor:
        """SalUn's DDPM relabel target: the fixed next class, (c + 1) mod K."""
        return (batch["label"] + 1) % self.num_classes

    def null_condition(self, cond: torch.Tensor) -> torch.Tensor:
        return torch.full_like(cond, self.num_classes)

    def predict(self, model, x_t, t, cond):
        return epsilon_part(model(x_t, t, class_labels=cond).sample, x_t.shape[1])


def random_flip(images: torch.Tensor) -> torch.Tensor:
    """Each image mirrored left-right with probability 1/2 (SalUn's CIFAR-10 DDPM trains with it)."""
    flip = torch.rand(images.shape[0], device=images.device) < 0.5
    return torch.where(flip.view(-1, *([1] * (images.dim() - 1))), images.flip(-1), images)


AUGMENTATIONS = {"none": None, "flip": random_flip}


def augmentation(name: str | None):
    """A pretrain section's `augment` by name; an unknown name is a UserError."""
    if (name or "none") not in AUGMENTATIONS:
        raise UserError(f"unknown augment {name!r} for a generator; use one of {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[name or "none"]


def _per_sample_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred.float(), target.float(), reduction="none").flatten(1).mean(1)


class DenoisingTask(Task):
    """Epsilon-prediction MSE at random timesteps; conditioning through the family's adapter."""

    name = "denoising"

    def __init__(self, adapter: DenoiserAdapter, noise_scheduler, cond_drop: float = 0.1,
                 saliency_guidance: float = 1.0, antithetic: bool = True, augment=None):
        self.adapter = adapter
        self.augment = augment  # applied to every training image before noising (pretraining: random flip)
        self.noise_scheduler = noise_scheduler
        self.cond_drop = cond_drop
        self.saliency_guidance = saliency_guidance
        self.antithetic = antithetic
        self.reference = None

    def noised(self, batch):
        """x0 -> (x_t, t, noise); antithetic timesteps (t, T-1-t) as in SalUn's reference."""
        images = batch["x"] if self.augment is None else self.augment(batch["x"])
        x0 = self.adapter.encode(images)
        steps = self.noise_scheduler.config.num_train_timesteps
        n = x0.shape[0]
        if self.antithetic:
            half = torch.randint(0, steps, ((n + 1) // 2,), device=x0.device)
            t = torch.cat([half, steps - 1 - half])[:n]
        else:
            t = torch.randint(0, steps, (n,), device=x0.device)
        noise = torch.randn_like(x0)
        return self.noise_scheduler.add_noise(x0, noise, t), t, noise

    def guided(self, model, x_t, t, cond, scale: float) -> torch.Tensor:
        """The guided prediction, `scale` in the model's guidance form (the adapter's)."""
        form = self.adapter.guidance_form
        if unguided(scale, form):
            return self.adapter.predict(model, x_t, t, cond)
        eps_cond = self.adapter.predict(model, x_t, t, cond)
        eps_null = self.adapter.predict(model, x_t, t, self.adapter.null_condition(cond))
        return guide(eps_cond, eps_null, scale, form)

    def training_loss(self, model, batch) -> torch.Tensor:
        x_t, t, noise = self.noised(batch)
        cond = self.adapter.drop_condition(self.adapter.condition(batch), self.cond_drop)
        return _per_sample_mse(self.adapter.predict(model, x_t, t, cond), noise)

    def relabel_loss(self, model, batch) -> torch.Tensor:
        """Forget samples' prediction pulled to the model's own prediction for the relabel condition."""
        x_t, t, _ = self.noised(batch)
        with torch.no_grad():
            target = self.adapter.predict(model, x_t, t, self.adapter.relabel_condition(batch))
        return _per_sample_mse(self.adapter.predict(model, x_t, t, self.adapter.condition(batch)), target)

    def esd_loss(self, model, batch, eta: float, prompts: str = "concept") -> torch.Tensor:
        """ESD target from the frozen reference: eps*(neutral) - eta * (eps*(c) - eps*(null)).

        prompts="concept" (the reference): the prediction for the concept c itself is trained, and the neutral
        prompt is the empty one. prompts="forget": the prediction for each forget prompt is trained, toward
        the frozen model's prediction for the same prompt without the concept, steered away from c; for a
        forget prompt that is the concept alone this is the reference target. prompts="anchor": the same
        with the forget prompt's anchor as the neutral prompt (ESD's later `erase_from` variant, which
        replaces the empty prompt by another concept)."""
        if self.reference is None:
            raise RuntimeError("esd objective needs task.set_reference(frozen_model) first")
        x_t, t, _ = self.noised(batch)
        trained, neutral, concept = self.adapter.esd_conditions(batch, prompts)
        with torch.no_grad():
            eps_concept = self.adapter.predict(self.reference, x_t, t, concept)
            eps_null = self.adapter.predict(self.reference, x_t, t, self.adapter.null_condition(concept))
            eps_neutral = eps_null if neutral is None else self.adapter.predict(self.reference, x_t, t, neutral)
            target = eps_neutral - eta * (eps_concept - eps_null)
        return _per_sample_mse(self.adapter.predict(model, x_t, t, trained), target)

    def saliency_loss(self, model, batch) -> torch.Tensor:
        """SalUn's mask loss: denoising loss on forget data with the guided prediction."""
        x_t, t, noise = self.noised(batch)
        pred = self.guided(model, x_t, t, self.adapter.condition(batch), self.saliency_guidance)
        return _per_sample_mse(pred, noise).mean()


def denoising_task(bundle) -> DenoisingTask:
    """The denoising task of a loaded generator (erase.models.GeneratorBundle), with its recipe's `train`
    settings: the conditioning drop rate of classifier-free guidance and the saliency guidance scale."""
    train = bundle.recipe.train
    return DenoisingTask(bundle.adapter, bundle.noise_scheduler, cond_drop=train.get("cond_drop", 0.1),
                         saliency_guidance=train.get("saliency_guidance", 1.0))
