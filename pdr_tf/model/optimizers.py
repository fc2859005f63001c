"""The trainer's optimizer: AdamW with a learning-rate multiplier per property network.

Unsup3D trains each network with its own Adam optimizer. One step of Adam moves every weight by about the learning
rate whatever the gradient's size, so networks whose outputs the image is very sensitive to change the image much
faster than others: with a 10-degree field of view, a canonical depth change of 0.0028 between neighbouring pixels
tilts a normal by 45 degrees, so one step moves the shading of a depth map tens of times further than the same step
moves the albedo. A multiplier per network (e.g. {"depth_net": 0.1}) rebalances that (docs/training.md). With
`multiplier_steps` the multipliers hold for the first steps only (the depth starts slowly while the albedo learns the
image; afterwards every network trains at the base rate).
"""

from typing import Mapping, Optional

import keras

from pdr_tf import config_checks


def _network_of(variable) -> Optional[str]:
  """The property network a model variable belongs to: the path component ending in "_net" (e.g. "depth_net")."""
  for part in variable.path.split("/"):
    if part.endswith("_net"):
      return part
  return None


class ScaledAdamW(keras.optimizers.AdamW):
  """AdamW whose step for the variables of network `name` uses learning_rate * lr_multipliers[name].

  Args:
    lr_multipliers: {network name ("depth_net", "albedo_net", "light_net", "view_net", "conf_net"): multiplier > 0};
      networks not listed use 1.
    multiplier_steps: the multipliers apply while fewer than this many steps have been taken, then every network
      uses the base learning rate; None: always. Steps are counted as the optimizer's applied updates: under
      mixed_float16 a step the loss scaling skips (an overflow) does not count.
    l2: coupled weight decay, PyTorch Adam's `weight_decay` (Unsup3D's optimizer): l2 * variable is added to the
      gradient before the moments, so Adam normalises it with the gradient. Keras' `weight_decay` is decoupled
      (AdamW: variable -= learning_rate * weight_decay * variable), which at Unsup3D's lr 1e-4 and 5e-4 shrinks a
      weight by only 5e-8 per step. The decoupled decay uses each network's own rate (learning_rate * multiplier), as
      Unsup3D's separate optimizers would. 0: none.
    **kwargs: `keras.optimizers.AdamW` arguments (learning_rate, weight_decay, epsilon, ...).
  """

  def __init__(
    self,
    lr_multipliers: Optional[Mapping[str, float]] = None,
    multiplier_steps: Optional[int] = None,
    l2: float = 0.0,
    **kwargs,
  ):
    super().__init__(**kwargs)
    self.l2 = config_checks.number("ScaledAdamW.l2", l2, 0.0)
    self.lr_multipliers = {
      name: config_checks.number(f"ScaledAdamW.lr_multipliers[{name!r}]", value, positive=True)
      for name, value in dict(lr_multipliers or {}).items()
    }
    self.multiplier_steps = (
      None if multiplier_steps is None else config_checks.integer("ScaledAdamW.multiplier_steps", multiplier_steps, 1)
    )

  def build(self, variables):
    super().build(variables)
    # update_step sees the backend's variables, which have no Keras path: key the multipliers by variable id.
    self._multiplier_by_key = {self._var_key(v): self.lr_multipliers.get(_network_of(v), 1.0) for v in variables}
    self._no_decay = {self._var_key(v) for v in variables if not self._use_weight_decay(v)}  # Keras' exclusions

  def _apply_weight_decay(self, variables):
    """Nothing here: Keras decays every variable at the base learning rate before the update; `update_step` decays
    each at its network's own rate instead, in the same order (decay, then the Adam step)."""

  def update_step(self, gradient, variable, learning_rate):
    if self.l2:
      gradient = gradient + keras.ops.cast(self.l2, variable.dtype) * variable
    scale = self._multiplier_by_key.get(self._var_key(variable), 1.0)
    if scale != 1.0:
      if self.multiplier_steps is not None:  # iterations counts the steps already applied
        scale = keras.ops.where(self.iterations < self.multiplier_steps, scale, 1.0)
      learning_rate = learning_rate * keras.ops.cast(scale, learning_rate.dtype)
    if self.weight_decay and self._var_key(variable) not in self._no_decay:  # decoupled: variable *= 1 - lr * wd
      wd, lr = (keras.ops.cast(value, variable.dtype) for value in (self.weight_decay, learning_rate))
      variable.assign_sub(variable * wd * lr)  # Keras' own order of the products
    return super().update_step(gradient, variable, learning_rate)

  def get_config(self):
    config = super().get_config()
    config["lr_multipliers"] = dict(self.lr_multipliers)
    config["multiplier_steps"] = self.multiplier_steps
    config["l2"] = self.l2
    return config
