"""Diagnostic: does a run's depth drift along the bas-relief ambiguity? (relief traded for light tilt and rotation)

python scripts/diagnostics/relief_ambiguity.py WORKDIR DATA_DIR STEP [STEP ...]

For each checkpoint STEP of the training run in WORKDIR, de-renders the 64 validation images with ground truth
(`python -m pdr_tf.probe`'s rows) and prints the depth's relief against the truth's (the ratio of their mean
per-image spreads on the object), the least-squares slopes of the predicted lx, ly, rx and ry on the truth (1: the
truth's scale; below 1: shrunk), and the products relief x slope.

Why the products: in a near-orthographic image (a 10 degree field of view) a Lambertian surface whose relief is
scaled by s, lit by a light whose tilt is scaled by about 1/s, shades nearly as before (the generalised bas-relief
ambiguity of shape from shading), and the parallax of a rotation by a / s of a relief scaled by s is nearly the
same as before (the depth-rotation ambiguity of structure from motion). Only second-order effects (foreshortening,
perspective, the ambient term) tell them apart. A depth that drifts deeper while one of the products stays put is
drifting along that valley of the loss, not toward the truth.
"""

import sys

RELIEF = "depth relief"
SLOPES = ("lx", "ly", "rx", "ry")
PRODUCTS = ("lx", "ry")


def ambiguity_row(rows):
  """From `probe.probe`'s parameter rows: {"relief": predicted / true mean relief, "<name>": slope for SLOPES,
  "relief_x_<name>": relief x slope for PRODUCTS}."""
  by_name = {r["name"]: r for r in rows}
  relief = by_name[RELIEF]["pred_mean"] / by_name[RELIEF]["gt_mean"]
  out = {"relief": relief}
  out.update({name: by_name[name]["slope"] for name in SLOPES})
  out.update({f"relief_x_{name}": relief * out[name] for name in PRODUCTS})
  return out


def format_row(step, row) -> str:
  slopes = "  ".join(f"{name} {row[name]:+.2f}" for name in SLOPES)
  products = "  ".join(f"relief x {name} {row[f'relief_x_{name}']:+.2f}" for name in PRODUCTS)
  return f"step {step:>6}: relief {row['relief']:.2f}x the truth's | slopes {slopes} | {products}"


def main():
  if len(sys.argv) < 4 or not all(arg.isdigit() for arg in sys.argv[3:]):
    sys.exit(__doc__)
  from pdr_tf import probe  # pylint: disable=import-outside-toplevel  (keeps the usage message fast)

  workdir, data_dir = sys.argv[1], sys.argv[2]
  print(f"{workdir}: relief, the slopes of the predicted on the true parameters, and their products")
  for step in (int(arg) for arg in sys.argv[3:]):
    print(format_row(step, ambiguity_row(probe.probe(workdir, data_dir, step=step)["parameters"])), flush=True)


if __name__ == "__main__":
  main()
