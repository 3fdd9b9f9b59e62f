"""The adaptive attacker: one who knows the defence the protocol prescribes, and matches what it shares.

A defence tested only against an attacker who ignores it gives a false sense of security (the SoK of
gradient inversion, USENIX Security 2025; Carlini et al. 2020 against InstaHide). The server knows the
protocol, so the attacker here reads ``AttackerKnowledge.defences`` (the specs, never the client's noise or
its MixUp partner, which come from the client's own randomness) and changes what it compares:

- pruning and Soteria zero entries: the zeros are visible, so it matches only the entries that were kept;
- signSGD shares signs: it compares a smooth surrogate of its candidate's signs, tanh(g / (T x mean |g|)),
  with the shared signs (cosine distance), instead of the candidate's raw gradient;
- noise (Gaussian, Laplacian, DP-SGD's): it knows the noise's standard deviation sigma, so it weighs each
  tensor by how much of it is signal, the Wiener gain snr / (1 + snr) with snr = ||s||^2 / (n sigma^2) - 1
  estimated from the shared tensor s itself (a tensor drowned in noise counts for nothing), and, since no
  candidate can match the noise, it adds an image prior (total variation) weighted by the noise's share of
  the shared update, as a maximum-a-posteriori estimate would; DP-SGD's clipping is applied to its
  candidate's gradient as the client applies it to its own;
- MixUp: it rebuilds the mixed photo (learning the mixed label, as DLG does), then unmixes it: the other
  photo comes from the public pool, which the server holds too (``AttackerKnowledge.public_photos``, given
  only when the protocol prescribes MixUp), so it tries each pool photo p and keeps
  (mix - SHARE x p) / (1 - SHARE) that looks most like a photo (fewest pixels out of [0, 1], least total
  variation);
- fp16 and int8 round each entry by less than the gradients' own differences: it matches as the naive one.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from ..defences import parse_defences
from .base import AttackerKnowledge, AttackSettings, Progress

# Weight of the total-variation prior per unit of the noise's share of the shared update's power: 0.3 gave
# 30-31 dB against gaussian:0.01 (naive: 26 dB) and 17-23 dB against gaussian:0.1 (naive: 6 dB) on the tune
# photos; 1.0 did no better at 0.01 and worse at 0.1 (measured, 150 steps, three photos).
PRIOR_PER_NOISE_SHARE = 0.3
LABEL_START_SCALE = 3.0  # logits of the learnt label's start: about 95% on the class the bias gradient favours
SAME_PHOTO_GAP = 0.02  # mean absolute difference below which an unmixed candidate is taken for a pool photo
SIGN_TEMPERATURE = 0.5  # tanh(g / (T mean|g|)): small enough to read as a sign, large enough to have a gradient


@dataclass(frozen=True)
class Adaptation:
    """What the attacker changes for a known defence (see the module's docstring)."""

    mask: tuple[torch.Tensor, ...] | None = None  # per tensor, the entries the client kept (pruning, Soteria)
    sign: bool = False
    clip: float | None = None  # DP-SGD's clipping norm
    noise_std: float = 0.0  # of the noise on every entry
    mix_share: float = 0.0  # MixUp's weight of the other photo
    prior_weight: float = 0.0  # of the total-variation prior, against the noise's share of the shared update

    @property
    def learns_label(self) -> bool:
        """A mixed photo has a mixed label: it is learnt with the image (DLG) instead of read off (iDLG)."""
        return self.mix_share > 0


def adaptation(knowledge: AttackerKnowledge, settings: AttackSettings) -> Adaptation | None:
    """None for the naive attacker (or no defence): it matches the shared update as if it were the true one."""
    if not settings.adaptive or not knowledge.defences:
        return None
    defences = parse_defences(knowledge.defences)
    kinds = {d.kind for d in defences}
    shared = knowledge.shared_update.gradients
    clip = next((d.params[0] for d in defences if d.kind == "dp"), None)
    noise_std = math.sqrt(sum(d.noise_std**2 for d in defences))
    # The noise's expected share of the shared update's power, which the attacker can tell from sigma: the
    # floor of any match, and so how far to trust the prior instead (a MAP estimate's weighting).
    noise_power = noise_std**2 * sum(g.numel() for g in shared)
    noise_share = min(1.0, noise_power / max(sum(float((g.double() ** 2).sum()) for g in shared), 1e-30))
    return Adaptation(
        mask=tuple(g != 0 for g in shared) if kinds & {"prune", "soteria"} else None,
        sign="sign" in kinds,
        clip=clip,
        noise_std=noise_std,
        mix_share=next((d.params[0] for d in defences if d.kind == "mixup"), 0.0),
        prior_weight=PRIOR_PER_NOISE_SHARE * noise_share,
    )


def view(adapt: Adaptation | None, candidate: Sequence[torch.Tensor],
         target: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The candidate's gradient and the shared one as the adaptive attacker compares them (unchanged for None)."""
    candidate, target = list(candidate), list(target)
    if adapt is None:
        return candidate, target
    if adapt.clip is not None:  # the client clipped its whole update to this norm: so does the candidate's
        norm = torch.sqrt(sum((c**2).sum() for c in candidate))
        candidate = [c * torch.clamp(adapt.clip / (norm + 1e-12), max=1.0) for c in candidate]
    if adapt.mask is not None:
        candidate = [c * m.to(c.dtype) for c, m in zip(candidate, adapt.mask, strict=True)]
    if adapt.sign:
        candidate = [torch.tanh(c / (SIGN_TEMPERATURE * c.abs().mean().clamp_min(1e-30))) for c in candidate]
        target = [t / t.abs().mean().clamp_min(1e-30) for t in target]
    if adapt.mask is not None or adapt.sign:
        # Each tensor on an equal footing (its cosine counts once): the kept entries are the largest ones, the
        # linear layer's mostly, whose direction a grey start already matches to 1e-5 (measured: the matching
        # then stalled at once on 90% pruning; with tensors weighed equally it went on to 25 dB).
        candidate, target = _unit(candidate), _unit(target)
    if adapt.noise_std > 0:
        gains = [_wiener_gain(t, adapt.noise_std) for t in target]
        candidate = [c * g for c, g in zip(candidate, gains, strict=True)]
        target = [t * g for t, g in zip(target, gains, strict=True)]
    return candidate, target


def _unit(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t / t.norm().clamp_min(1e-30) for t in tensors]


def _wiener_gain(shared: torch.Tensor, noise_std: float) -> float:
    """snr / (1 + snr) for one tensor, its signal power estimated as the shared power less the noise's."""
    noise_power = shared.numel() * noise_std**2
    snr = max(0.0, float((shared.double() ** 2).sum()) / noise_power - 1)
    return math.sqrt(snr / (1 + snr))  # applied to both sides: the squared distance gets snr / (1 + snr)


def unmix(images: torch.Tensor, share: float, pool: torch.Tensor) -> torch.Tensor:
    """Each mixed photo's private part: (mix - share x p) / (1 - share) for the pool photo p that makes it look
    most like a photo (least mass outside [0, 1], then least total variation); or, when one of those is a pool
    photo itself (a private photo that is public too), that pool photo, which would otherwise lose to the
    smoother blends the wrong partners leave."""
    pool = pool.to(images)
    out = []
    for mixed in images:
        candidates = (mixed.unsqueeze(0) - share * pool) / (1 - share)
        gaps = (candidates.unsqueeze(1) - pool.unsqueeze(0)).abs().flatten(2).mean(dim=2)  # candidate x pool
        gaps.fill_diagonal_(math.inf)  # a photo is never mixed with itself
        if float(gaps.min()) < SAME_PHOTO_GAP:
            out.append(pool[int(gaps.min(dim=0).values.argmin())])
            continue
        outside = (candidates - candidates.clamp(0, 1)).abs().flatten(1).mean(dim=1)
        tv = ((candidates[..., 1:, :] - candidates[..., :-1, :]).abs().flatten(1).mean(dim=1)
              + (candidates[..., :, 1:] - candidates[..., :, :-1]).abs().flatten(1).mean(dim=1))
        out.append(candidates[int((outside + tv).argmin())])
    return torch.stack(out)


def label_start(knowledge: AttackerKnowledge, settings: AttackSettings) -> AttackSettings:
    """DLG's learnt label, started where the output layer's bias gradient points instead of at random.

    That gradient is p - t (the victim's probabilities less the soft target): the classes the target holds
    more of than the victim believes have negative entries. From a random start, a mixed label's 50/50 target
    left DLG in the wrong basin (a cosine distance of 1.8, measured on the report set's camera photo).
    """
    if settings.start_label_logits is not None:
        return settings
    bias = next((g for g in reversed(knowledge.shared_update.gradients)
                 if g.dim() == 1 and g.numel() == knowledge.num_classes), None)
    if bias is None:
        return settings
    logits = -LABEL_START_SCALE * bias.detach().cpu().float() / bias.abs().max().clamp_min(1e-30)
    return dataclasses.replace(settings, start_label_logits=logits.expand(knowledge.input_shape[0], -1).clone())


Attack = Callable[[AttackerKnowledge, AttackSettings], Iterator[Progress]]


def unmixing(attack: Attack) -> Attack:
    """The attack, whose reconstructions the adaptive attacker unmixes when the protocol prescribes MixUp."""

    @functools.wraps(attack)
    def adapted(knowledge: AttackerKnowledge, settings: AttackSettings) -> Iterator[Progress]:
        adapt = adaptation(knowledge, settings)
        progress = attack(knowledge, settings)
        pool = knowledge.public_photos
        if adapt is None or not adapt.mix_share or pool is None:
            return progress
        return (dataclasses.replace(p, reconstruction=unmix(p.reconstruction, adapt.mix_share, pool))
                for p in progress)

    return adapted
