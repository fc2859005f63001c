"""The training-step benchmark: a full LOOCC training step against the networks' forward plus backward alone.

Used by `python -m pdr_tf.bench` (section training_step). Each mode is one way to run the step (MODES); all are
timed against the same networks-alone baseline (uncompiled: on CPUs XLA's convolutions are slower than oneDNN's),
interleaved so that machine load hits both alike, and the headline mode (the gin configs' default on this machine,
`default_modes()`) gets a breakdown of where the rest of the step goes.
"""

import dataclasses
from typing import Dict, Sequence, Tuple

from pdr_tf import graph
from pdr_tf.benchmarks import timing
from pdr_tf.data.formats import IMAGE_SIZE

TARGET_STEP_RATIO = 1.2  # a training step at most 1.2x the networks' forward plus backward alone


def preset_model(gin_file: str = "quick.gin") -> Dict[str, object]:
  """The `DeRenderer.*` bindings of a shipped gin preset and the files it includes (later bindings win), read as
  text so that the benchmark's model is the preset's without parsing the rest of its configuration."""
  import ast  # pylint: disable=import-outside-toplevel
  import os  # pylint: disable=import-outside-toplevel
  import re  # pylint: disable=import-outside-toplevel

  from pdr_tf import gin_config  # pylint: disable=import-outside-toplevel

  bindings = {}
  with open(os.path.join(gin_config.GIN_DIR, gin_file), encoding="utf-8") as f:
    for line in f:
      include = re.match(r"\s*include\s+'([^']+)'", line)
      binding = re.match(r"\s*DeRenderer\.(\w+)\s*=\s*(.+?)\s*$", line)
      if include:
        bindings.update(preset_model(include.group(1)))
      elif binding:
        bindings[binding.group(1)] = ast.literal_eval(binding.group(2))
  return bindings


QUICK_MODEL = preset_model("quick.gin")  # the quick preset's network: widths, 16x16 depth, flat start
PAPER_MODEL = {"nf": 64, "zdim": 256, "encoder_nf": 32}


# Rasterization cost follows the predicted geometry. Glorot-initialised depth networks predict depth noise
# (neighbouring pixels ~0.05 apart in a 0.2 range; PyTorch's initialisation, the default, about half that); seen
# from a rotated view the grid mesh turns into slivers tens of pixels long whose boxes hold many candidate pixels.
# Scenes "smooth": the depth network's output layer scaled by SMOOTH_DEPTH_SCALE (neighbouring depths ~0.009 apart)
# and views near the front, the cheap regime. "edge_on": Glorot's raw depth noise and views pinned near +-60 degrees
# about every axis (the view head's rotation weights multiplied by EDGE_ON_VIEW_GAIN, saturating its tanh), the
# state the quick cars run reached within 40 steps before the de-rendering fixes (views near -60 degrees about all
# three axes; measured ~950k candidate pixels per image against ~5k for smooth scenes).
SMOOTH_DEPTH_SCALE = 0.1
EDGE_ON_VIEW_GAIN = 50.0


@dataclasses.dataclass(frozen=True)
class Mode:
  """How the training step runs: rasterizer backend, the renderer compiled with XLA (`Renderer.jit_compile`),
  the whole loss and gradients compiled with XLA (`Trainer.jit_compile`), and whether the depth network's
  predicted scene is "smooth" or "edge_on" (see SMOOTH_DEPTH_SCALE)."""

  backend: str
  render_xla: bool
  step_xla: bool
  scene: str = "smooth"


MODES = {
  "tf_xla_render": Mode("tf", render_xla=True, step_xla=False),  # the shipped gin configs
  "tf_xla_step": Mode("tf", render_xla=True, step_xla=True),  # Trainer.jit_compile = True (one device)
  "tfg": Mode("tfg", render_xla=False, step_xla=False),  # the TF-Graphics kernel (Renderer.backend = 'tfg')
  "tfg_edge_on": Mode("tfg", render_xla=False, step_xla=False, scene="edge_on"),
  "tf_xla_render_edge_on": Mode("tf", render_xla=True, step_xla=False, scene="edge_on"),
}
DEFAULT_MODE = "tf_xla_render"


def default_modes() -> Tuple[str, ...]:
  """Every mode, the shipped configuration on this machine first (`Renderer.backend = 'auto'` with
  `Renderer.jit_compile`: "tf_xla_render"; "tfg" if "auto" were the kernel)."""
  from pdr_tf.render import rasterizer  # pylint: disable=import-outside-toplevel

  shipped = "tfg" if rasterizer.resolve_backend("auto") == "tfg" else "tf_xla_render"
  return (shipped,) + tuple(m for m in MODES if m != shipped)


def _random_images(batch, seed=0):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  return tf.random.stateless_uniform([batch, IMAGE_SIZE, IMAGE_SIZE, 3], [seed, 1], -1.0, 1.0)


def build_training(model_size: Dict[str, int], mode: str = DEFAULT_MODE, seed: int = 0):
  """The quick-preset (or paper-size) cars model with LOOCC light_view, its objective and AdamW, with the
  renderer of `mode` (see MODES)."""
  import keras  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from pdr_tf.model import losses  # pylint: disable=import-outside-toplevel
  from pdr_tf.model import loocc
  from pdr_tf.model import de_renderer as model
  from pdr_tf.model import objective
  from pdr_tf.render import renderer

  keras.utils.set_random_seed(seed)
  backend, render_xla = MODES[mode].backend, MODES[mode].render_xla
  # The edge-on state was reached with Keras' Glorot initialisation (twice PyTorch's scale, the default now): its
  # depth noise is what makes the slivers, so the scene keeps it whatever the default.
  # It was reached with full-resolution depth, too (the CPU presets predict 16x16 depth, started flat).
  edge_on = {"initializer": "glorot", "depth_size": IMAGE_SIZE, "flat_depth_init": False}
  net = model.DeRenderer(
    **{**model_size, **(edge_on if MODES[mode].scene == "edge_on" else {})},
    renderer=renderer.Renderer(image_size=IMAGE_SIZE, backend=backend, jit_compile=render_xla),
  )
  net.build_for_inference()
  if MODES[mode].scene == "smooth":
    kernel = net.depth_net.out_conv.kernel
    kernel.assign(kernel * SMOOTH_DEPTH_SCALE)
  else:
    kernel = net.view_net.head.kernel  # [1, 1, C, 6]: rotations first
    kernel.assign(kernel * tf.constant([EDGE_ON_VIEW_GAIN] * 3 + [1.0] * 3))
  obj = objective.Objective(
    weights=losses.ReconstructionWeights.cars(), loocc_config=loocc.LooccConfig(mode="light_view")
  )
  optimizer = keras.optimizers.AdamW(learning_rate=1e-4, weight_decay=5e-4)
  optimizer.build(net.trainable_variables)
  return net, obj, optimizer


def compiled_update(optimizer, variables):
  """The AdamW update compiled with XLA, as `Trainer` runs it without tf.distribute."""
  return graph.function(lambda grads: optimizer.apply_gradients(zip(grads, variables)), jit_compile=True)


def training_functions(net, obj, optimizer, step_xla=False):
  """tf.functions of (a) the full training step and (b) the networks' forward plus backward alone.

  (a) train_step(images, seed): the objective (the networks, the render of the scene and its mirror, the LOOCC
      re-render of x_aug and its encoding by the four encoders, the losses), its gradients and the AdamW update
      (XLA-compiled, as `Trainer` runs it on one device); with `step_xla` the loss and gradients are compiled
      with XLA too (as `Trainer.jit_compile` does).
  (b) networks_step(images, images_aug): `predict_scene(images)` (depth, albedo, light and view networks, plus
      the confidence network when the model has one) and `encode(images_aug)` (the cycle's second encoder pass,
      on a stand-in for x_aug without gradient), every output into a trivial sum-of-squares loss, and the
      gradients. No rendering, no real loss, no optimizer update.
  Both return a scalar that depends on every gradient, so nothing is pruned.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  variables = net.trainable_variables

  def gradients(images, seed, renderer=None):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(obj(net, images, seed, training=True, renderer=renderer)["total"])
    return loss, tape.gradient(loss, variables)

  inline = net.renderer.inline()

  def inline_renderer_gradients(images, seed):  # as Trainer does: the renderer traced inline in the XLA step
    return gradients(images, seed, renderer=inline)

  compiled_gradients = graph.function(inline_renderer_gradients, jit_compile=True) if step_xla else gradients
  update = compiled_update(optimizer, variables)

  @graph.function
  def train_step(images, seed):
    loss, grads = compiled_gradients(images, seed)
    update(grads)
    return loss

  @graph.function
  def networks_step(images, images_aug):
    with tf.GradientTape() as tape:
      out = net.predict_scene(images, training=True)
      out = {k: v for k, v in out.items()}
      out["features_aug"] = net.encode(images_aug, training=True)
      loss = tf.add_n([tf.reduce_mean(tf.square(t)) for t in tf.nest.flatten(out)])
    return tf.linalg.global_norm(tape.gradient(loss, variables))

  return train_step, networks_step


def render_parts(r, scene, repeats) -> Dict[str, float]:
  """Forward plus backward (ms) of each stage of `Renderer.render` on `scene` (depth, albedo, light, view):
  shading, the depth warp (mesh, rasterization, plane depth) and the inverse warp with bilinear sampling."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from pdr_tf.render import geometry  # pylint: disable=import-outside-toplevel

  depth, albedo, light, view = scene
  recon_depth = r.warp_depth(depth, view)
  canon_image = r.shade(depth, albedo, light)["image"]
  stages = {
    "shade": (lambda d, a, l, v: r.shade(d, a, l)["image"], [depth, albedo, light, view]),
    "warp_depth": (lambda d, a, l, v: r.warp_depth(d, v), [depth, albedo, light, view]),
    "inverse_warp_sample": (
      lambda d, a, l, v: geometry.bilinear_sample(a, r.inverse_warp_grid(d, v)),
      [recon_depth, canon_image, light, view],
    ),
  }
  result = {}
  for name, (fn, args) in stages.items():

    def fwd_bwd(*xs, fn=fn):
      with tf.GradientTape() as tape:
        tape.watch(xs)
        loss = tf.reduce_mean(fn(*xs))
      return tf.linalg.global_norm([g for g in tape.gradient(loss, xs) if g is not None])

    fwd_bwd = graph.function(fwd_bwd, jit_compile=r.compiled)  # each stage compiled as `render` is
    result[f"render_{name}_fwd_bwd_2b_ms"] = timing.ms(timing.time_call(lambda f=fwd_bwd, a=args: f(*a), repeats))
  return result


def step_breakdown(net, obj, optimizer, images, repeats) -> Dict[str, float]:
  """Times the training step's parts separately (ms): the rendering path forward and forward plus backward on the
  2B batch of the scene and its mirror, the LOOCC re-render (B, no gradient), the losses (reconstruction terms and
  NT-Xent on fixed tensors) and the AdamW update. Used as the profile when the step ratio target is missed."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from pdr_tf.model import loocc  # pylint: disable=import-outside-toplevel
  from pdr_tf.render import renderer

  out = net(images, training=False)
  scene = renderer.flip_pair(out["depth"], out["albedo"], out["light"], out["view"])
  r = net.renderer

  @graph.function
  def render_forward(d, a, l, v):
    return tf.reduce_mean(r.render(d, a, l, v)["recon_image"])

  @graph.function
  def render_forward_backward(d, a, l, v):
    with tf.GradientTape() as tape:
      tape.watch([d, a, l, v])
      loss = tf.reduce_mean(r.render(d, a, l, v)["recon_image"])
    return tf.linalg.global_norm(tape.gradient(loss, [d, a, l, v]))

  @graph.function
  def loocc_render(seed):
    return tf.reduce_mean(obj.augment(net, images, out, seed)["image"])

  @graph.function
  def losses_only():
    terms = obj.reconstruction_terms(net, images, out)
    feats = {k: tf.stop_gradient(v) for k, v in out["features"].items()}
    contrast = loocc.nt_xent(
      loocc.leave_one_out_features(feats, False), loocc.leave_one_out_features(feats, False), obj.loocc.temperature
    )
    return tf.add_n([tf.reduce_mean(t) for t in terms.values()]) + tf.reduce_mean(contrast["per_example_loss"])

  grads = [tf.zeros_like(v) for v in net.trainable_variables]

  apply_update = compiled_update(optimizer, net.trainable_variables)

  @graph.function
  def update():
    apply_update(grads)
    return tf.constant(0.0)

  seed = tf.constant([0, 1], tf.int64)
  parts = {
    "render_forward_2b_ms": lambda: render_forward(*scene),
    "render_forward_backward_2b_ms": lambda: render_forward_backward(*scene),
    "loocc_rerender_ms": lambda: loocc_render(seed),
    "losses_ms": losses_only,
    "optimizer_update_ms": update,
  }
  return {
    **render_parts(r, scene, repeats),
    **{name: timing.ms(timing.time_call(fn, repeats)) for name, fn in parts.items()},
  }


def time_mode(mode: str, model_size: Dict[str, int], batch: int, repeats: int) -> Dict[str, object]:
  """One mode's full step against the networks alone (same model, batch and load); see `training_functions`."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  net, obj, optimizer = build_training(model_size, mode)
  train_step, networks_step = training_functions(net, obj, optimizer, step_xla=MODES[mode].step_xla)
  images = _random_images(batch)
  images_aug = tf.reverse(images, axis=[2])  # stand-in for x_aug: same cost, a different input
  counter = [0]

  def one_train_step():
    counter[0] += 1
    return train_step(images, tf.constant([0, counter[0]], tf.int64))

  # Interleaved, because the CPU may be shared: both see the same load; the ratio of the medians is reported and
  # the ratio of the minima (the least-disturbed runs) is kept beside it.
  timed = timing.time_interleaved({"step": one_train_step, "nets": lambda: networks_step(images, images_aug)}, repeats)
  step_s, nets_s = timed["step"]["median"], timed["nets"]["median"]
  return {
    "mode": mode,
    **dataclasses.asdict(MODES[mode]),
    "batch": batch,
    "train_step_ms": timing.ms(step_s),
    "networks_fwd_bwd_ms": timing.ms(nets_s),
    "ratio": round(step_s / nets_s, 3),
    "train_step_min_ms": timing.ms(timed["step"]["min"]),
    "networks_fwd_bwd_min_ms": timing.ms(timed["nets"]["min"]),
    "ratio_of_minima": round(timed["step"]["min"] / timed["nets"]["min"], 3),
    "train_images_per_s": round(batch / step_s, 1),
    "_objects": (net, obj, optimizer, train_step, networks_step, images, images_aug),
  }


def bench_training_step(
  batch: int, repeats: int, model_size=None, modes: Sequence[str] = tuple(MODES), breakdown=True
) -> Dict[str, object]:
  """Every mode's step against the networks alone; the headline numbers are those of the first mode.

  Returns:
    The first mode's results (train_step_ms, networks_fwd_bwd_ms, ratio, ratio_of_minima, train_images_per_s,
    pass against TARGET_STEP_RATIO), "modes" with every mode's, "breakdown" (the first mode's step in parts,
    when asked) and "_functions" (tf.functions of a mode without XLA, whose graphs the FLOP count can read).
  """
  model_size = model_size or QUICK_MODEL
  runs = {mode: time_mode(mode, model_size, batch, repeats) for mode in modes}
  head = runs[modes[0]]
  net, obj, optimizer = head["_objects"][:3]
  plain = next((r for r in runs.values() if not (r["render_xla"] or r["step_xla"])), head)
  result = {
    "model": dict(model_size),
    **{k: v for k, v in head.items() if k != "_objects"},
    "networks": [
      n.name for n in (net.depth_net, net.albedo_net, net.light_net, net.view_net, net.conf_net) if n is not None
    ],
    "target_ratio": TARGET_STEP_RATIO,
    "pass": bool(head["ratio"] <= TARGET_STEP_RATIO),
    "modes": {m: {k: v for k, v in r.items() if k not in ("_objects", "mode")} for m, r in runs.items()},
    "_functions": plain["_objects"][3:],
  }
  if breakdown:
    parts = step_breakdown(net, obj, optimizer, head["_objects"][5], repeats)
    parts["networks_fwd_bwd_ms"] = result["networks_fwd_bwd_ms"]
    accounted = (
      parts["networks_fwd_bwd_ms"]
      + parts["render_forward_backward_2b_ms"]
      + parts["loocc_rerender_ms"]
      + parts["losses_ms"]
      + parts["optimizer_update_ms"]
    )
    parts["unaccounted_ms"] = round(result["train_step_ms"] - accounted, 2)
    # The networks-alone cost has no optimizer update; this ratio shows how much of the gap the update is.
    parts["ratio_excluding_update"] = round(
      (result["train_step_ms"] - parts["optimizer_update_ms"]) / result["networks_fwd_bwd_ms"], 3
    )
    result["breakdown"] = parts
  return result
