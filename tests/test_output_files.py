"""Tests of `pdr_tf.evaluation.output_files`' JSON reports (the --json FILE of probe and bench); its per-folder
manifests are tested with evaluate's outputs in test_evaluate_outputs.py."""

import importlib
import json
import os

import pytest

from pdr_tf.evaluation import output_files

TOOL = "pdr_tf.bench"


def test_a_report_is_marked_and_may_replace_only_a_report_of_the_same_tool(tmp_path):
  path = tmp_path / "new" / "report.json"  # the folders above it are created
  assert output_files.check_json_report(path, TOOL) is None
  output_files.write_json_report(path, {"seconds": 1.5, "written_by": "ignored"}, TOOL)
  assert json.loads(path.read_text()) == {"written_by": TOOL, "seconds": 1.5}
  assert path.read_text().startswith('{\n  "written_by": "pdr_tf.bench",') and path.read_text().endswith("}\n")
  assert output_files.check_json_report(path, TOOL) is None  # a re-run may replace it
  output_files.write_json_report(path, {"seconds": 2}, TOOL, indent=1)
  assert json.loads(path.read_text()) == {"written_by": TOOL, "seconds": 2}
  assert sorted(os.listdir(path.parent)) == ["report.json"]
  # Another tool may not replace it.
  error = output_files.check_json_report(path, "pdr_tf.probe")
  assert str(path) in error and "written by pdr_tf.bench" in error and "nothing was written" in error


@pytest.mark.parametrize(
  "content, reason",
  [
    (b'{"seconds": 1}', 'no "written_by": "pdr_tf.bench" in it'),
    (b'["written_by", "pdr_tf.bench"]', "no "),
    (b'{"written_by": "pdr_tf.probe"}', "written by pdr_tf.probe"),
    (b'{"written_by": "pdr_tf.bench"', "not JSON"),
    (b"\xff\xfe binary", "not JSON"),
    (b"", "not JSON"),
  ],
)
def test_a_file_that_is_not_the_tools_report_is_refused_and_left_alone(tmp_path, content, reason):
  path = tmp_path / "mine.json"
  path.write_bytes(content)
  error = output_files.check_json_report(path, TOOL)
  assert error.startswith(f"{path} already exists") and reason in error
  assert "nothing was written" in error and "choose another path" in error and "\n" not in error
  with pytest.raises(FileExistsError, match="never overwrites"):
    output_files.write_json_report(path, {"seconds": 1}, TOOL)
  assert path.read_bytes() == content
  assert sorted(os.listdir(tmp_path)) == ["mine.json"]


def test_a_folder_a_link_or_a_file_in_the_way_is_refused(tmp_path):
  error = output_files.check_json_report(tmp_path, TOOL)
  assert error.startswith(f"{tmp_path} is a folder") and os.path.join(str(tmp_path), "bench.json") in error
  report = tmp_path / "report.json"
  output_files.write_json_report(report, {}, TOOL)
  link = tmp_path / "link.json"
  link.symlink_to(report)
  assert "a link" in output_files.check_json_report(link, TOOL)
  a_file = tmp_path / "notes.txt"
  a_file.write_text("mine")
  error = output_files.check_json_report(a_file / "sub" / "report.json", TOOL)
  assert "is a file, not a folder" in error and a_file.read_text() == "mine"


@pytest.mark.parametrize(
  "module, argv",
  [("rasterizer", []), ("data", []), ("coarse_depth", ["--data_dir", "/nonexistent"])],
)
def test_every_benchmark_refuses_a_users_json_file_before_it_runs(module, argv, tmp_path, capsys):
  main = importlib.import_module(f"pdr_tf.benchmarks.{module}").main
  user_file = tmp_path / "user.json"
  user_file.write_text('{"mine": 1}')
  with pytest.raises(SystemExit) as info:
    main(argv + ["--json", str(user_file)])
  assert info.value.code == 2 and "is not a report of" in capsys.readouterr().err
  assert user_file.read_text() == '{"mine": 1}'
