"""Tests for pdr_tf.gin_config: files, includes resolved against the shipped gin folder, and named errors."""

import os

import gin
import pytest

from pdr_tf import cli
from pdr_tf import gin_config
from pdr_tf import train  # noqa: F401  (registers the training configurables, as the entry point does)


def test_includes_resolve_against_the_shipped_gin_folder(tmp_path):
  mine = tmp_path / "mine.gin"
  mine.write_text("include 'pieces/cars.gin'\nSceneRanges.max_depth = 1.2\n")
  gin_config.parse([str(mine)], ["SceneRanges.min_depth = 0.8"])
  assert gin.query_parameter("SceneRanges.max_depth") == 1.2
  assert gin.query_parameter("SceneRanges.min_depth") == 0.8  # bindings come after the files
  assert gin.query_parameter("SceneRanges.border_depth") == 1.02  # from the shipped piece


def test_errors_name_the_file_or_binding(tmp_path):
  with pytest.raises(gin_config.GinConfigError, match="does not exist"):
    gin_config.parse([str(tmp_path / "missing.gin")])
  bad = tmp_path / "bad.gin"
  bad.write_text("SceneRanges.max_dpeth = 1.2\n")
  with pytest.raises(gin_config.GinConfigError, match="bad.gin"):
    gin_config.parse([str(bad)])
  with pytest.raises(gin_config.GinConfigError, match="SceneRanges.nope"):
    gin_config.parse([], ["SceneRanges.nope = 1"])
  with pytest.raises(gin_config.GinConfigError, match="--gin_param"):
    gin_config.parse([], ["NoSuchConfigurable.x = 1"])
  with pytest.raises(gin_config.GinConfigError, match="is a folder"):
    gin_config.parse([str(tmp_path)])
  unclosed = tmp_path / "unclosed.gin"  # gin's tokenizer raises tokenize.TokenError, not a ValueError
  unclosed.write_text("SceneRanges.max_depth = (\n")
  with pytest.raises(gin_config.GinConfigError, match="unclosed.gin"):
    gin_config.parse([str(unclosed)])
  with pytest.raises(gin_config.GinConfigError, match="--gin_param 'SceneRanges.max_depth = \\(1'"):
    gin_config.parse([], ["SceneRanges.max_depth = (1"])


def test_bindings_and_files_gin_cannot_apply_are_named_with_the_reason(tmp_path):
  """An include or import in a binding, a string value without quotes and a file that is not UTF-8 are each one
  GinConfigError naming the binding or file (they were OSError, ImportError, a ValueError quoting an AST object's
  address, and a UnicodeDecodeError out of stack_files)."""
  with pytest.raises(gin_config.GinConfigError, match="--gin_param \"include 'no_such.gin'\": Unable to open"):
    gin_config.parse([], ["include 'no_such.gin'"])
  with pytest.raises(gin_config.GinConfigError, match="--gin_param 'import no_such_module': No module"):
    gin_config.parse([], ["import no_such_module"])
  with pytest.raises(gin_config.GinConfigError, match="not a Python literal .* quote a string") as raised:
    gin_config.parse([], ["Trainer.strategy=mirrored"])
  assert "0x" not in str(raised.value)
  latin1 = tmp_path / "latin1.gin"
  latin1.write_bytes(b"# caf\xe9\nTrainer.train_steps = 3\n")
  assert gin_config.stack_files([str(latin1)]) == [str(latin1)]
  with pytest.raises(gin_config.GinConfigError, match="latin1.gin: 'utf-8' codec"):
    gin_config.parse([str(latin1)])


def test_gin_dir_is_found():
  assert os.path.isfile(os.path.join(gin_config.GIN_DIR, "quick.gin"))


def test_stack_digest_follows_the_included_files(tmp_path):
  (tmp_path / "pieces").mkdir()
  (tmp_path / "pieces" / "b.gin").write_text("x = 1\n")
  (tmp_path / "a.gin").write_text("include 'pieces/b.gin'\ny = 2\n")
  top = str(tmp_path / "a.gin")
  assert [os.path.basename(p) for p in gin_config.stack_files([top])] == ["a.gin", "b.gin"]
  before = gin_config.stack_digest([top])
  (tmp_path / "pieces" / "b.gin").write_text("x = 3\n")
  assert gin_config.stack_digest([top]) != before
  shipped = gin_config.stack_files([os.path.join(gin_config.GIN_DIR, "cpu.gin")])
  assert [os.path.basename(p) for p in shipped] == ["cpu.gin", "quick.gin", "cpu_derender.gin"]


@gin.configurable
def _configured_failure(split="tset"):
  raise ValueError(f"the data folder has no {split!r} split")


def test_entry_points_report_an_error_without_gins_call_context():
  with pytest.raises(ValueError) as info:
    _configured_failure()
  assert "In call to configurable" in str(info.value)  # what gin appends: its wrapper and a memory address
  assert cli.error_text(info.value) == "the data folder has no 'tset' split"


def test_changed_bindings_compares_operative_configs_binding_by_binding():
  before = (
    "import pdr_tf.model\n\n# Parameters for Trainer:\n"
    "Trainer.learning_rate = 0.0001\nTrainer.lr_multipliers = \\\\\n    {'depth_net': 0.1}\n"
    "Trainer.train_steps = 1200\nDeRenderer.nf = 16\n"
  )
  after = before.replace("0.0001", "0.0003").replace("1200", "4000").replace("DeRenderer.nf = 16\n", "")
  after += "LooccConfig.weight = 0.1\nDeRenderer.nf = 32\n"  # a name one side lacks is not compared
  assert gin_config.bindings_of(before)["Trainer.lr_multipliers"] == "\\\\ {'depth_net': 0.1}"
  changed = gin_config.changed_bindings(before, after, ignore=("Trainer.train_steps",))
  assert changed == ["DeRenderer.nf", "Trainer.learning_rate"]
  assert gin_config.changed_bindings(before, before + "LooccConfig.weight = 0.1\n") == []
  assert gin_config.changed_bindings(before, before) == []
