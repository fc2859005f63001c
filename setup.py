"""pdr_tf: task-agnostic 3-D representations of objects by de-rendering (TensorFlow 2 / Keras 3)."""

from setuptools import find_packages, setup

INSTALL_REQUIRES = [
  # tensorflow-graphics needs the `tensorflow` distribution (not tensorflow-cpu); it also pulls
  # tensorflow-addons, which pdr_tf never imports (end of life, broken on Keras 3).
  "tensorflow==2.21.0",
  "tensorflow-graphics==2021.12.3",
  "tensorboard>=2.16",  # tf.summary needs it; TensorFlow 2.21 no longer depends on it
  "keras>=3.15,<4",
  "gin-config>=0.5",
  "apache-beam[tfrecord]==2.77.0",
  "google-crc32c>=1.5",
  "scikit-learn>=1.5",
  "scipy>=1.11",
  "numpy>=1.26",
  "pillow>=10",
  "matplotlib>=3.8",
  "tqdm>=4.66",
]

EXTRAS_REQUIRE = {
  "dev": ["pytest>=8", "pytest-xdist>=3.5", "ruff==0.17.6"],
  "dataflow": ["apache-beam[gcp,tfrecord]==2.77.0"],
}

setup(
  name="pdr_tf",
  version="0.1.0",
  description="Physically disentangled representations by de-rendering, with the LOOCC loss (TF2 / Keras 3).",
  long_description=open("README.md", encoding="utf-8").read(),
  long_description_content_type="text/markdown",
  python_requires=">=3.10",
  packages=find_packages(include=["pdr_tf", "pdr_tf.*", "beam_pipelines", "beam_pipelines.*"]) + ["pdr_tf.configs"],
  # The gin files live in the repository's top-level gin/ and install as the package data pdr_tf/configs, so that
  # `pdr_tf.gin_config.GIN_DIR` finds them in a wheel install as well as in a checkout.
  package_dir={"pdr_tf.configs": "gin"},
  package_data={"pdr_tf.configs": ["*.gin", "pieces/*.gin"]},
  install_requires=INSTALL_REQUIRES,
  extras_require=EXTRAS_REQUIRE,
  license="Apache-2.0",
)
