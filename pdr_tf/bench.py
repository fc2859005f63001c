"""Benchmark harness: rasterizer backends, training step vs networks, data, FLOP/s, serving and Beam, in one run.

Run: python -m pdr_tf.bench [--json out.json] [--quick]. Every section is a function returning a dict; a section
that fails is recorded as {"error": "..."} and the run goes on. See docs/performance.md for what each number means
and the measured tables. The same command runs on a GPU machine (TensorFlow places the ops there; the TF-Graphics
rasterization kernel is CPU-only and stays on the host).
"""

import argparse
import dataclasses
import datetime
import io
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from typing import Callable, Dict, Optional

import numpy as np

logger = logging.getLogger(__name__)

TARGET_STEP_RATIO = 1.5  # a training step at most 1.5x the networks' forward plus backward alone
TARGET_PIPELINE_RATIO = 5.0  # the input pipeline at least 5x faster than training
QUICK_MODEL = {"nf": 16, "zdim": 64, "encoder_nf": 16}  # gin/quick.gin
PAPER_MODEL = {"nf": 64, "zdim": 256, "encoder_nf": 32}
IMAGE_SIZE = 64


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes and repeat counts of one run (`preset` picks them: "full", "quick" or "smoke")."""
    preset: str
    repeats: int  # timed calls per measurement (the median is reported), after one warm-up call
    raster_batch: int  # the rasterizer section's batch of 64x64 grid meshes
    train_batch: int  # the training-step section's batch (quick.gin: 16)
    pipeline_images: int
    pipeline_batches: int
    matmul_n: int
    conv_batch: int
    conv_channels: int
    serving_batch: int
    beam_images: int
    beam_startup: bool
    paper_model: bool


PRESETS = {
    "full": Settings("full", 10, 64, 16, 512, 40, 2048, 32, 64, 64, 200, True, True),
    "quick": Settings("quick", 7, 64, 16, 256, 30, 1024, 16, 64, 64, 60, False, False),
    "smoke": Settings("smoke", 1, 2, 2, 8, 2, 128, 1, 8, 2, 3, False, False),
}


# --------------------------------------------------------------------------------------------------- helpers
def _force(value):
    """Waits for a result: pulls every tensor in `value` to the host (GPU ops are asynchronous)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    for t in tf.nest.flatten(value):
        if hasattr(t, "numpy"):
            t.numpy()


def time_call(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of `fn()` in seconds over `repeats` calls, after `warmup` untimed calls (tracing)."""
    for _ in range(warmup):
        _force(fn())
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        _force(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_interleaved(fns: Dict[str, Callable[[], object]], repeats: int) -> Dict[str, Dict[str, float]]:
    """Times several callables in alternation (one warm-up each, then `repeats` rounds a, b, a, b, ...), so that a
    ratio between them is taken under the same machine load; returns {name: {"median": s, "min": s}}."""
    for fn in fns.values():
        _force(fn())
    times = {name: [] for name in fns}
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            start = time.perf_counter()
            _force(fn())
            times[name].append(time.perf_counter() - start)
    return {name: {"median": statistics.median(t), "min": min(t)} for name, t in times.items()}


def _ms(seconds):
    return round(1000.0 * seconds, 2)


def machine_info() -> Dict[str, object]:
    """CPU count, platform, Python and TF versions, GPU names, load average and a UTC timestamp."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        gpus.append(details.get("device_name", device.name))
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
            "python": sys.version.split()[0], "tensorflow": tf.__version__, "gpus": gpus,
            "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def grid_scene(batch, size=IMAGE_SIZE, seed=0):
    """A batch of smooth random scenes: depth [B,S,S] in [0.95, 1.05], albedo [B,S,S,3], light [B,4], view [B,6]
    (rotations within +-0.3 rad, small translations), so the 64x64 grid mesh covers most of the image."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(seed)
    ramp = np.linspace(-1, 1, size, dtype=np.float32)
    phase = rng.uniform(0, np.pi, (batch, 1, 1)).astype(np.float32)
    depth = 1.0 + 0.05 * np.sin(3 * ramp[None, :, None] + phase) * np.cos(2 * ramp[None, None, :])
    albedo = np.tanh(rng.normal(0, 1, (batch, size, size, 3))).astype(np.float32)
    light = np.stack([rng.uniform(0.2, 0.8, batch), rng.uniform(0.5, 1.0, batch), rng.uniform(-0.5, 0.5, batch),
                      rng.uniform(-0.5, 0.5, batch)], -1).astype(np.float32)
    view = np.concatenate([rng.uniform(-0.3, 0.3, (batch, 3)), rng.uniform(-0.05, 0.05, (batch, 2)),
                           np.zeros((batch, 1))], -1).astype(np.float32)
    return tuple(tf.constant(x, tf.float32) for x in (depth, albedo, light, view))


def _available_backends():
    """Registered rasterizer backends, plus the pure-TF one from `rasterizer_tf` when it exists but is not yet
    registered (registered in this process only)."""
    from pdr_tf import rasterizer  # pylint: disable=import-outside-toplevel
    if "tf" not in rasterizer.backends():
        try:
            from pdr_tf import rasterizer_tf  # pylint: disable=import-outside-toplevel
            rasterizer.register_backend("tf", rasterizer_tf.triangle_ids)
        except (ImportError, AttributeError) as e:
            logger.info("pure-TF rasterizer backend not available: %s", e)
    return rasterizer.backends()


# --------------------------------------------------------------------------------------------------- sections
def bench_rasterizer_backend(backend: str, batch: int, repeats: int) -> Dict[str, object]:
    """One backend on the 64x64 grid mesh (7,938 triangles per image): rasterize alone, the full rendering path
    forward, and the rendering path forward plus backward (gradients to depth, albedo, light and view).

    Returns:
      Dict: rasterize_ms, render_forward_ms, render_forward_backward_ms (per batch), coverage (covered fraction).
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from pdr_tf import geometry, rasterizer, renderer  # pylint: disable=import-outside-toplevel
    r = renderer.Renderer(image_size=IMAGE_SIZE, backend=backend)
    depth, albedo, light, view = grid_scene(batch)

    @tf.function
    def raster(d, v):
        points = tf.reshape(geometry.depth_to_points(d, r.intrinsics), [tf.shape(d)[0], -1, 3])
        points = geometry.transform_points(points, v, r.rotation_center)
        frags = rasterizer.rasterize(points, r.faces, r.intrinsics, (IMAGE_SIZE, IMAGE_SIZE), backend=backend,
                                     background_depth=r.far_depth)
        return tf.reduce_mean(frags.mask)

    @tf.function
    def forward(d, a, l, v):
        return tf.reduce_mean(r.render(d, a, l, v)["recon_image"])

    @tf.function
    def forward_backward(d, a, l, v):
        with tf.GradientTape() as tape:
            tape.watch([d, a, l, v])
            loss = tf.reduce_mean(r.render(d, a, l, v)["recon_image"])
        return tf.linalg.global_norm(tape.gradient(loss, [d, a, l, v]))

    return {"backend": backend, "batch": batch, "triangles_per_image": int(r.faces.shape[0]),
            "coverage": round(float(raster(depth, view)), 4),
            "rasterize_ms": _ms(time_call(lambda: raster(depth, view), repeats)),
            "render_forward_ms": _ms(time_call(lambda: forward(depth, albedo, light, view), repeats)),
            "render_forward_backward_ms": _ms(time_call(lambda: forward_backward(depth, albedo, light, view),
                                                        repeats))}


def bench_rasterizers(settings: Settings) -> Dict[str, object]:
    """Every available rasterizer backend side by side; a backend that fails gets {"error": ...}."""
    results = {}
    for backend in _available_backends():
        results[backend] = _guarded(f"rasterizer[{backend}]", lambda b=backend: bench_rasterizer_backend(
            b, settings.raster_batch, settings.repeats))
    return results


def build_training(model_size: Dict[str, int], backend: str = "tfg", seed: int = 0):
    """The quick-preset (or paper-size) cars model with LOOCC light_view, its objective and AdamW."""
    import keras  # pylint: disable=import-outside-toplevel
    from pdr_tf import losses, loocc, model, objective, renderer  # pylint: disable=import-outside-toplevel
    keras.utils.set_random_seed(seed)
    net = model.DeRenderer(**model_size, renderer=renderer.Renderer(image_size=IMAGE_SIZE, backend=backend))
    net.build_for_inference()
    obj = objective.Objective(weights=losses.ReconstructionWeights.cars(),
                              loocc_config=loocc.LooccConfig(mode="light_view"))
    optimizer = keras.optimizers.AdamW(learning_rate=1e-4, weight_decay=5e-4)
    optimizer.build(net.trainable_variables)
    return net, obj, optimizer


def training_functions(net, obj, optimizer):
    """tf.functions of (a) the full training step and (b) the networks' forward plus backward alone.

    (a) train_step(images, seed): the objective (the networks, the render of the scene and its mirror, the LOOCC
        re-render of x_aug and its encoding by the four encoders, the losses), its gradients and the AdamW update.
    (b) networks_step(images, images_aug): `predict_scene(images)` (depth, albedo, light and view networks, plus
        the confidence network when the model has one) and `encode(images_aug)` (the cycle's second encoder pass,
        on a stand-in for x_aug without gradient), every output into a trivial sum-of-squares loss, and the
        gradients. No rendering, no real loss, no optimizer update.
    Both return a scalar that depends on every gradient, so nothing is pruned.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    variables = net.trainable_variables

    @tf.function
    def train_step(images, seed):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(obj(net, images, seed, training=True)["total"])
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    @tf.function
    def networks_step(images, images_aug):
        with tf.GradientTape() as tape:
            out = net.predict_scene(images, training=True)
            out = {k: v for k, v in out.items()}
            out["features_aug"] = net.encode(images_aug, training=True)
            loss = tf.add_n([tf.reduce_mean(tf.square(t)) for t in tf.nest.flatten(out)])
        return tf.linalg.global_norm(tape.gradient(loss, variables))

    return train_step, networks_step


def _random_images(batch, seed=0):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return tf.random.stateless_uniform([batch, IMAGE_SIZE, IMAGE_SIZE, 3], [seed, 1], -1.0, 1.0)


def render_parts(r, scene, repeats) -> Dict[str, float]:
    """Forward plus backward (ms) of each stage of `Renderer.render` on `scene` (depth, albedo, light, view):
    shading, the depth warp (mesh, rasterization, barycentric depth) and the inverse warp with bilinear sampling."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from pdr_tf import geometry  # pylint: disable=import-outside-toplevel
    depth, albedo, light, view = scene
    recon_depth = r.warp_depth(depth, view)
    canon_image = r.shade(depth, albedo, light)["image"]
    stages = {
        "shade": (lambda d, a, l, v: r.shade(d, a, l)["image"], [depth, albedo, light, view]),
        "warp_depth": (lambda d, a, l, v: r.warp_depth(d, v), [depth, albedo, light, view]),
        "inverse_warp_sample": (lambda d, a, l, v: geometry.bilinear_sample(a, r.inverse_warp_grid(d, v)),
                                [recon_depth, canon_image, light, view]),
    }
    result = {}
    for name, (fn, args) in stages.items():
        @tf.function
        def fwd_bwd(*xs, fn=fn):
            with tf.GradientTape() as tape:
                tape.watch(xs)
                loss = tf.reduce_mean(fn(*xs))
            return tf.linalg.global_norm([g for g in tape.gradient(loss, xs) if g is not None])
        result[f"render_{name}_fwd_bwd_2b_ms"] = _ms(time_call(lambda f=fwd_bwd, a=args: f(*a), repeats))
    return result


def step_breakdown(net, obj, optimizer, images, repeats) -> Dict[str, float]:
    """Times the training step's parts separately (ms): the rendering path forward and forward plus backward on the
    2B batch of the scene and its mirror, the LOOCC re-render (B, no gradient), the losses (reconstruction terms and
    NT-Xent on fixed tensors) and the AdamW update. Used as the profile when the 1.5x target is missed."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from pdr_tf import loocc, renderer  # pylint: disable=import-outside-toplevel
    out = net(images, training=False)
    scene = renderer.flip_pair(out["depth"], out["albedo"], out["light"], out["view"])
    r = net.renderer

    @tf.function
    def render_forward(d, a, l, v):
        return tf.reduce_mean(r.render(d, a, l, v)["recon_image"])

    @tf.function
    def render_forward_backward(d, a, l, v):
        with tf.GradientTape() as tape:
            tape.watch([d, a, l, v])
            loss = tf.reduce_mean(r.render(d, a, l, v)["recon_image"])
        return tf.linalg.global_norm(tape.gradient(loss, [d, a, l, v]))

    @tf.function
    def loocc_render(seed):
        return tf.reduce_mean(obj.augment(net, images, out, seed)["image"])

    @tf.function
    def losses_only():
        terms = obj.reconstruction_terms(images, out)
        feats = {k: tf.stop_gradient(v) for k, v in out["features"].items()}
        contrast = loocc.nt_xent(loocc.leave_one_out_features(feats, False),
                                 loocc.leave_one_out_features(feats, False), obj.loocc.temperature)
        return tf.add_n([tf.reduce_mean(t) for t in terms.values()]) + tf.reduce_mean(contrast["per_example_loss"])

    grads = [tf.zeros_like(v) for v in net.trainable_variables]

    @tf.function
    def update():
        optimizer.apply_gradients(zip(grads, net.trainable_variables))
        return tf.constant(0.0)

    seed = tf.constant([0, 1], tf.int64)
    return {**render_parts(r, scene, repeats),
            "render_forward_2b_ms": _ms(time_call(lambda: render_forward(*scene), repeats)),
            "render_forward_backward_2b_ms": _ms(time_call(lambda: render_forward_backward(*scene), repeats)),
            "loocc_rerender_ms": _ms(time_call(lambda: loocc_render(seed), repeats)),
            "losses_ms": _ms(time_call(losses_only, repeats)),
            "optimizer_update_ms": _ms(time_call(update, repeats))}


def bench_training_step(settings: Settings, model_size=None, breakdown=True) -> Dict[str, object]:
    """(a) the full training step against (b) the networks alone, same batch and model (see
    `training_functions`); the ratio a/b against TARGET_STEP_RATIO, and a breakdown of the rest."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    model_size = model_size or QUICK_MODEL
    net, obj, optimizer = build_training(model_size)
    train_step, networks_step = training_functions(net, obj, optimizer)
    batch = settings.train_batch
    images = _random_images(batch)
    images_aug = tf.reverse(images, axis=[2])  # stand-in for x_aug: same cost, a different input
    counter = [0]

    def one_train_step():
        counter[0] += 1
        return train_step(images, tf.constant([0, counter[0]], tf.int64))

    # Interleaved, because the CPU may be shared: both see the same load; the ratio of the medians is reported and
    # the ratio of the minima (the least-disturbed runs) is kept beside it.
    timed = time_interleaved({"step": one_train_step, "nets": lambda: networks_step(images, images_aug)},
                             settings.repeats)
    step_s, nets_s = timed["step"]["median"], timed["nets"]["median"]
    ratio = step_s / nets_s
    result = {"model": dict(model_size), "batch": batch, "backend": net.renderer.backend,
              "networks": [n.name for n in (net.depth_net, net.albedo_net, net.light_net, net.view_net,
                                             net.conf_net) if n is not None],
              "train_step_ms": _ms(step_s), "networks_fwd_bwd_ms": _ms(nets_s), "ratio": round(ratio, 3),
              "train_step_min_ms": _ms(timed["step"]["min"]), "networks_fwd_bwd_min_ms": _ms(timed["nets"]["min"]),
              "ratio_of_minima": round(timed["step"]["min"] / timed["nets"]["min"], 3),
              "target_ratio": TARGET_STEP_RATIO, "pass": bool(ratio <= TARGET_STEP_RATIO),
              "train_images_per_s": round(batch / step_s, 1),
              "_functions": (train_step, networks_step, images, images_aug)}
    if breakdown:
        parts = step_breakdown(net, obj, optimizer, images, settings.repeats)
        parts["networks_fwd_bwd_ms"] = result["networks_fwd_bwd_ms"]
        accounted = (parts["networks_fwd_bwd_ms"] + parts["render_forward_backward_2b_ms"] +
                     parts["loocc_rerender_ms"] + parts["losses_ms"] + parts["optimizer_update_ms"])
        parts["unaccounted_ms"] = round(result["train_step_ms"] - accounted, 2)
        # The networks-alone cost has no optimizer update; this ratio shows how much of the gap the update is.
        parts["ratio_excluding_update"] = round(
            (result["train_step_ms"] - parts["optimizer_update_ms"]) / result["networks_fwd_bwd_ms"], 3)
        result["breakdown"] = parts
    return result


def bench_flops(settings: Settings, training: Optional[Dict[str, object]]) -> Dict[str, object]:
    """The machine's dense matmul and conv2d GFLOP/s (timed), and the model's achieved GFLOP/s: the training step's
    and the networks' FLOPs counted by `tf.compat.v1.profiler` on their concrete-function graphs (ops with
    registered FLOP statistics: convolutions and their gradients, matmuls, element-wise ops), divided by their
    measured times."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    n, b, c = settings.matmul_n, settings.conv_batch, settings.conv_channels
    a = tf.random.normal([n, n])
    x = tf.random.normal([b, IMAGE_SIZE, IMAGE_SIZE, c])
    w = tf.random.normal([3, 3, c, c])
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, a)))
    conv = tf.function(lambda: tf.reduce_sum(tf.nn.conv2d(x, w, 1, "SAME")))
    result = {"matmul_n": n, "conv_shape": [b, IMAGE_SIZE, IMAGE_SIZE, c, c],
              "machine_matmul_gflops": round(2 * n ** 3 / time_call(matmul, settings.repeats) / 1e9, 1),
              "machine_conv2d_gflops": round(2 * b * IMAGE_SIZE ** 2 * 9 * c * c /
                                             time_call(conv, settings.repeats) / 1e9, 1),
              "flop_count_method": "tf.compat.v1.profiler float_operation on the concrete-function graphs"}
    if not training or "_functions" not in training:
        result["model_error"] = "the training-step section failed; no model FLOPs"
        return result
    train_step, networks_step, images, images_aug = training["_functions"]
    seed = tf.TensorSpec([2], tf.int64)
    step_flops = graph_flops(train_step.get_concrete_function(tf.TensorSpec(images.shape), seed).graph)
    nets_flops = graph_flops(networks_step.get_concrete_function(tf.TensorSpec(images.shape),
                                                                 tf.TensorSpec(images.shape)).graph)
    batch = training["batch"]
    result.update({"train_step_gflop_per_image": round(step_flops / batch / 1e9, 4),
                   "networks_gflop_per_image": round(nets_flops / batch / 1e9, 4),
                   "model_train_step_gflops": round(step_flops / (training["train_step_ms"] / 1e3) / 1e9, 1),
                   "model_networks_gflops": round(nets_flops / (training["networks_fwd_bwd_ms"] / 1e3) / 1e9, 1)})
    return result


def graph_flops(graph) -> int:
    """FLOPs of one run of `graph` as counted by TF's v1 profiler (ops without FLOP statistics count 0)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)


def bench_input_pipeline_vs_training(settings: Settings, training: Optional[Dict[str, object]]):
    """tf.data images/s (data.bench_input_pipeline, training mode, the training batch) against training images/s."""
    from pdr_tf.benchmarks import data  # pylint: disable=import-outside-toplevel
    pipe = data.bench_input_pipeline(num_images=settings.pipeline_images, batch_size=settings.train_batch,
                                     num_batches=settings.pipeline_batches, training=True)
    result = {"pipeline_images_per_s": pipe["images_per_s"], "batch": pipe["batch_size"],
              "target_ratio": TARGET_PIPELINE_RATIO}
    if training and "train_images_per_s" in training:
        ratio = pipe["images_per_s"] / training["train_images_per_s"]
        result.update(train_images_per_s=training["train_images_per_s"], ratio=round(ratio, 2),
                      **{"pass": bool(ratio >= TARGET_PIPELINE_RATIO)})
    return result


def _png(seed):
    from PIL import Image  # pylint: disable=import-outside-toplevel
    pixels = np.random.default_rng(seed).integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def bench_serving(settings: Settings) -> Dict[str, object]:
    """Exports the quick-preset model, loads it back (export.load_export) and times serving_default on one PNG
    (latency) and embed_images on a float batch (throughput)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from pdr_tf import export, model  # pylint: disable=import-outside-toplevel
    net = model.DeRenderer(**QUICK_MODEL)
    net.build_for_inference()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        version_dir = export.export_model(net, os.path.join(tmp, "export"))
        export_s = time.perf_counter() - start
        loaded, _ = export.load_export(version_dir, signatures=("serving_default", "embed_images"))
        serve, embed = loaded.signatures["serving_default"], loaded.signatures["embed_images"]
        one = tf.constant([_png(0)])
        batch = settings.serving_batch
        floats = tf.random.stateless_uniform([batch, IMAGE_SIZE, IMAGE_SIZE, 3], [0, 2])
        latency = time_call(lambda: serve(image_bytes=one), max(settings.repeats, 3) * 4)
        throughput = time_call(lambda: embed(images=floats), settings.repeats)
    return {"export_seconds": round(export_s, 2), "serving_default_batch1_ms": _ms(latency),
            "embed_images_batch": batch, "embed_images_batch_ms": _ms(throughput),
            "embed_images_per_s": round(batch / throughput, 1)}


def bench_beam_workers(settings: Settings) -> Dict[str, object]:
    """Beam UTKFace conversion images/s with 1 and 2 local workers (data.bench_beam)."""
    from pdr_tf.benchmarks import data  # pylint: disable=import-outside-toplevel
    result = {}
    for workers in (1, 2):
        result[f"workers_{workers}"] = data.bench_beam(workers, settings.beam_images,
                                                       measure_startup=settings.beam_startup)
        logging.getLogger().setLevel(logging.INFO)  # the Beam job lowers the root level to WARNING
    return result


def bench_paper_model(settings: Settings) -> Dict[str, object]:
    """Training images/s of the paper-size model (nf=64, zdim=256, encoder_nf=32) at the training batch."""
    result = bench_training_step(settings, model_size=PAPER_MODEL, breakdown=False)
    return {k: v for k, v in result.items() if k in ("model", "batch", "train_step_ms", "networks_fwd_bwd_ms",
                                                      "ratio", "train_images_per_s", "_functions")}


def _guarded(name, fn):
    """Runs a section; a failure becomes {"error": "<type>: <message>"} and is logged, and the run goes on."""
    logger.info("benchmark: %s", name)
    start = time.perf_counter()
    try:
        result = fn()
    except Exception as e:  # pylint: disable=broad-except  (a failed section must not stop the others)
        logger.warning("%s failed: %s\n%s", name, e, traceback.format_exc())
        return {"error": f"{type(e).__name__}: {e}"}
    logger.info("%s done in %.1f s", name, time.perf_counter() - start)
    return result


# ----------------------------------------------------------------------------------------------- report
def _fmt(value):
    if isinstance(value, bool):
        return "PASS" if value else "FAIL"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.1f}"
    return str(value)


def _rows(sections):
    """(section, measurement, value, note) rows of the table."""
    rows = []

    def add(section, name, data, key, note=""):
        if isinstance(data, dict) and "error" in data:
            rows.append((section, name, "error", data["error"][:70]))
        elif isinstance(data, dict) and key in data:
            rows.append((section, name, _fmt(data[key]), note))

    for backend, r in (sections.get("rasterizer") or {}).items():
        if backend == "error":
            add("rasterizer", "all backends", sections["rasterizer"], "")
            break
        batch = f"batch {r.get('batch', '?')}, 64x64 grid mesh"
        add("rasterizer", f"{backend}: rasterize ms", r, "rasterize_ms", batch)
        add("rasterizer", f"{backend}: render fwd ms", r, "render_forward_ms", batch)
        add("rasterizer", f"{backend}: render fwd+bwd ms", r, "render_forward_backward_ms", batch)
    t = sections.get("training_step", {})
    add("training", "full step ms", t, "train_step_ms", f"batch {t.get('batch', '?')}, LOOCC light_view")
    add("training", "networks fwd+bwd ms", t, "networks_fwd_bwd_ms", "networks + cycle encode, trivial loss")
    add("training", "ratio step / networks", t, "ratio", f"target <= {TARGET_STEP_RATIO}")
    add("training", "ratio of minima", t, "ratio_of_minima", "least-disturbed runs")
    add("training", "ratio target", t, "pass", "on the ratio of medians")
    for key, value in (t.get("breakdown") or {}).items():
        rows.append(("training", f"  breakdown: {key}", _fmt(value), "profile"))
    p = sections.get("input_pipeline", {})
    add("input", "pipeline images/s", p, "pipeline_images_per_s", f"batch {p.get('batch', '?')}")
    add("input", "training images/s", p, "train_images_per_s")
    add("input", "ratio pipeline / training", p, "ratio", f"target >= {TARGET_PIPELINE_RATIO}")
    add("input", "ratio target", p, "pass")
    f = sections.get("flops", {})
    add("flops", "machine matmul GFLOP/s", f, "machine_matmul_gflops", f"{f.get('matmul_n', '?')}^2 float32")
    add("flops", "machine conv2d GFLOP/s", f, "machine_conv2d_gflops", "3x3, NHWC")
    add("flops", "train step GFLOP/image", f, "train_step_gflop_per_image", "TF profiler count")
    add("flops", "model GFLOP/s (train step)", f, "model_train_step_gflops")
    add("flops", "model GFLOP/s (networks)", f, "model_networks_gflops")
    s = sections.get("serving", {})
    add("serving", "serving_default b=1 ms", s, "serving_default_batch1_ms", "one PNG")
    add("serving", "embed_images images/s", s, "embed_images_per_s", f"batch {s.get('embed_images_batch', '?')}")
    b = sections.get("beam", {})
    if "error" in b:
        add("beam", "conversion", b, "")
    for workers in (1, 2):
        r = b.get(f"workers_{workers}", {})
        add("beam", f"{workers} worker(s) images/s", r, "images_per_s",
            f"{r.get('written', '?')} images, start-up included")
        add("beam", f"{workers} worker(s) steady images/s", r, "steady_images_per_s", "start-up excluded")
    m = sections.get("paper_model")
    if m is not None:
        add("paper model", "train images/s", m, "train_images_per_s", "nf=64, zdim=256, encoder_nf=32")
        add("paper model", "ratio step / networks", m, "ratio")
    return rows


def format_table(sections) -> str:
    """A fixed-width text table of the headline numbers of every section."""
    rows = [("section", "measurement", "value", "note")] + _rows(sections)
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip() for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def run_all(settings: Settings, sections=None) -> Dict[str, object]:
    """Runs the chosen sections (all by default) and returns {"machine", "settings", "sections"}."""
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel
    names = sections or ["rasterizer", "training_step", "input_pipeline", "flops", "serving", "beam"] + (
        ["paper_model"] if settings.paper_model else [])
    results = {}
    functions = {
        "rasterizer": lambda: bench_rasterizers(settings),
        "training_step": lambda: bench_training_step(settings),
        "input_pipeline": lambda: bench_input_pipeline_vs_training(settings, results.get("training_step")),
        "flops": lambda: bench_flops(settings, results.get("training_step")),
        "serving": lambda: bench_serving(settings),
        "beam": lambda: bench_beam_workers(settings),
        "paper_model": lambda: bench_paper_model(settings),
    }
    unknown = [n for n in names if n not in functions]
    if unknown:
        raise ValueError(f"unknown benchmark section(s) {unknown}; choose from {sorted(functions)}")
    for name in tqdm(names, desc="benchmarks", unit="section"):
        results[name] = _guarded(name, functions[name])
    for value in results.values():
        value.pop("_functions", None)  # tf.functions kept for the FLOP count; not JSON
    return {"machine": machine_info(), "settings": dataclasses.asdict(settings), "sections": results}


def main(argv=None) -> int:
    """Entry point: runs the harness, prints the table, optionally writes JSON."""
    parser = argparse.ArgumentParser(prog="python -m pdr_tf.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=None, help="write the results (with machine info) to this file")
    parser.add_argument("--quick", action="store_true", help="few repeats, no paper-size model (~3-5 min, 2 CPUs)")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)  # tests: 1 repeat, tiny sizes
    parser.add_argument("--sections", default=None,
                        help="comma-separated subset: rasterizer,training_step,input_pipeline,flops,serving,beam,"
                             "paper_model (default: all of the preset)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = PRESETS["smoke" if args.smoke else "quick" if args.quick else "full"]
    sections = [s.strip() for s in args.sections.split(",") if s.strip()] if args.sections else None
    start = time.perf_counter()
    report = run_all(settings, sections)
    report["seconds"] = round(time.perf_counter() - start, 1)
    print(format_table(report["sections"]))
    print(f"machine: {report['machine']['cpus']} CPUs, {report['machine']['platform']}, "
          f"GPUs {report['machine']['gpus'] or 'none'}, load average {report['machine']['load_average']}, "
          f"TF {report['machine']['tensorflow']}; {report['seconds']} s")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
        logger.info("results written to %s", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
