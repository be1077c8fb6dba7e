"""Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) of training batches, on device.

Each example is paired with its mirror in the batch (example i with B - 1 - i, as timm
pairs them) and one weight λ ~ Beta(α, α) is drawn per batch from the step's key, so a
seed gives the same mixes. Mixup blends every float input: λ x + (1 - λ) x_partner.
CutMix pastes one box of the partner into every input whose modality has positions
(`POSITIONAL`: an image's pixels or voxels, a signal's time steps), the same box in
relative coordinates for all of them; λ becomes the share each input keeps (averaged
over those inputs), and inputs without positions (tabular) are blended by it. With
both alphas set, each batch uses one of the two with probability 1/2. The loss is
then λ loss(label) + (1 - λ) loss(partner's label) (medjax/train/step.py).
`<key>_present` flags, labels and masks stay the example's own.
"""
import jax
import jax.numpy as jnp

from medjax.config import ConfigError
from medjax.data.modalities import MODALITIES
from medjax.data.task import Task

MAX_POSITIONAL_AXES = 3  # a volume's depth, height and width
RNG_STREAM = 2**30  # folded into the train step's key: mixing draws apart from dropout's


def positional_keys(task: Task) -> list[str]:
  return [key for key, spec in task.inputs.items()
          if getattr(MODALITIES[spec.modality], 'POSITIONAL', False)]


def check_inputs(train_config, task: Task) -> None:
  """CutMix needs an input with positions."""
  if train_config.cutmix_alpha and not positional_keys(task):
    raise ConfigError(f'train.cutmix_alpha needs an image or signal input; {task.name} has '
                      f'{sorted(task.inputs)}')


def _box_mask(shape, centre, side):
  """(1, *shape, 1) bool: the box of relative side `side` centred at relative
  coordinates `centre` (one per axis), clipped to the array."""
  inside = None
  for axis, size in enumerate(shape):
    half = jnp.round(side * size / 2)
    middle = jnp.floor(centre[axis] * size)
    positions = jnp.arange(size)
    along = (positions >= middle - half) & (positions < middle + half)
    along = along.reshape((1,) * axis + (size,) + (1,) * (len(shape) - axis - 1))
    inside = along if inside is None else inside & along
  return inside[None, ..., None]


def _cutmix(batch, keys, rng, lam):
  """The partner's box pasted into each positional input; the share kept."""
  centre = jax.random.uniform(rng, (MAX_POSITIONAL_AXES,))
  mixed, kept = dict(batch), []
  for key in keys:
    x = batch[key]
    positions = x.shape[1:-1]
    inside = _box_mask(positions, centre[:len(positions)],
                       (1.0 - lam) ** (1.0 / len(positions)))
    mixed[key] = jnp.where(inside, x[::-1], x)
    kept.append(1.0 - jnp.mean(inside.astype(jnp.float32)))
  return mixed, jnp.mean(jnp.stack(kept))


def _blend(batch, keys, lam):
  return {**batch, **{key: lam * batch[key] + (1.0 - lam) * batch[key][::-1] for key in keys}}


def mix(batch: dict, rng, task: Task, *, mixup_alpha: float, cutmix_alpha: float):
  """-> (mixed batch, the partners' labels, λ). Both alphas 0: the batch, unchanged, λ = 1."""
  partner_labels = batch['label'][::-1]
  if not (mixup_alpha or cutmix_alpha):
    return batch, partner_labels, jnp.ones((), jnp.float32)
  float_keys = [key for key in task.inputs if jnp.issubdtype(batch[key].dtype, jnp.floating)]
  choice_rng, mixup_rng, cutmix_rng, box_rng = jax.random.split(rng, 4)
  candidates = []
  if mixup_alpha:
    lam = jax.random.beta(mixup_rng, mixup_alpha, mixup_alpha)
    candidates.append((_blend(batch, float_keys, lam), lam))
  if cutmix_alpha:
    positional = [key for key in positional_keys(task) if key in float_keys]
    cut, kept = _cutmix(batch, positional, box_rng,
                        jax.random.beta(cutmix_rng, cutmix_alpha, cutmix_alpha))
    others = [key for key in float_keys if key not in positional]
    candidates.append((_blend(cut, others, kept), kept))
  if len(candidates) == 1:
    (mixed, lam), = candidates
    return mixed, partner_labels, lam
  use_cutmix = jax.random.bernoulli(choice_rng)
  (blended, mixup_lam), (cut, cut_lam) = candidates
  mixed = jax.tree.map(lambda a, b: jnp.where(use_cutmix, b, a), blended, cut)
  return mixed, partner_labels, jnp.where(use_cutmix, cut_lam, mixup_lam)
