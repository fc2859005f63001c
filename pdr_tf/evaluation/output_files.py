"""Writing output files into folders that may also hold the user's own files, without ever overwriting those.

pdr_tf never deletes or overwrites a file it did not write itself. As `pdr_tf.grids` marks the folders it writes with
a marker file, a folder written through this module holds a manifest, `MANIFEST`: a JSON file
`{"files": {file name: sha256 of the content pdr_tf wrote there}}`. A file of the folder is pdr_tf's own, and may
be replaced, only when the manifest lists it with the sha256 of its current content. Anything else with an output's
name (a file the user put there, a pdr_tf output edited since, one written before the manifest existed, a folder or a
link) is foreign: `check_writable` raises FileExistsError naming it, so a writer that checks all its outputs first
stops before it writes anything. Unlike grids' marker, which makes a whole folder pdr_tf's, the manifest is per
file: an output folder may hold other files, and a file put later into a folder pdr_tf wrote is still protected.

Each file is written to a temporary name in the folder, its digest recorded in the manifest as pending, the file
renamed over the old one (a link there is replaced, never followed), and then its digest recorded as final. A file
whose content matches its final or its pending digest is pdr_tf's, so a crash at any point leaves a folder whose
outputs the next run still recognises as its own.

A command's single JSON report (`--json FILE` of probe, the benchmarks and the diagnostics scripts) carries its own
mark instead of a manifest entry: `check_json_report` and `write_json_report` below.
"""

import hashlib
import json
import logging
import os
import uuid

MANIFEST = ".pdr_tf_outputs.json"
_TMP_PREFIX = ".pdr_tf-"  # temporary files: ".pdr_tf-<uuid4>.tmp", never an existing name


def check_filename(filename):
  """ValueError unless `filename` is a plain file name (no folder part) other than the manifest's."""
  if not filename or filename in (".", "..", MANIFEST) or os.sep in filename or (os.altsep and os.altsep in filename):
    raise ValueError(f"output file name must be a plain file name other than {MANIFEST}, got {filename!r}")


def check_folder(folder, hint=""):
  """NotADirectoryError when `folder`, or the nearest of its parents that exists, is not a folder (e.g. a file)."""
  folder = os.fspath(folder)
  path = os.path.abspath(folder)
  while not os.path.isdir(path):
    if os.path.lexists(path):
      what = "is" if path == os.path.abspath(folder) else f"cannot be created: {path} is"
      raise NotADirectoryError(f"output folder {folder} {what} a file, not a folder{_hint(hint)}")
    parent = os.path.dirname(path)
    if parent == path:
      break
    path = parent


def _hint(hint):
  return f": {hint}" if hint else ""


def _sha256(path):
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def read_manifest(folder, hint=""):
  """{file name: sha256} of the files pdr_tf wrote in `folder` ({} without a manifest).

  Raises:
      FileExistsError: `folder` holds something named like the manifest that is not one (never overwritten).
  """
  return _read_manifest_data(folder, hint)[0]


def _read_manifest_data(folder, hint=""):
  """(files, pending): the final and the pending {file name: sha256} of `folder`'s manifest (see read_manifest)."""
  path = os.path.join(os.fspath(folder), MANIFEST)
  if not os.path.lexists(path):
    return {}, {}
  try:
    if os.path.islink(path) or not os.path.isfile(path):
      raise ValueError("not a regular file")
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
    files = data["files"] if isinstance(data, dict) else None
    pending = data.get("pending", {}) if isinstance(data, dict) else None
    for table in (files, pending):
      if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ValueError('no {"files": {name: sha256}} object')
  except (OSError, ValueError, KeyError) as e:
    raise FileExistsError(
      f"{path} is not a pdr_tf output manifest ({e}); pdr_tf does not overwrite it{_hint(hint)}"
    ) from e
  return dict(files), dict(pending)


def foreign_files(folder, filenames, hint=""):
  """Paths of `folder`/`filenames` that exist but are not pdr_tf's own (see the module docstring)."""
  folder = os.fspath(folder)
  if not os.path.isdir(folder):
    return []
  manifest, pending = _read_manifest_data(folder, hint)
  foreign = []
  for filename in filenames:
    path = os.path.join(folder, filename)
    if not os.path.lexists(path):
      continue
    digests = {manifest.get(filename), pending.get(filename)} - {None}
    own = bool(digests) and os.path.isfile(path) and not os.path.islink(path) and _sha256(path) in digests
    if not own:
      foreign.append(path)
  return foreign


def check_writable(folder, filenames, hint=""):
  """Checks, writing nothing, that `filenames` may be written into `folder`.

  Args:
      folder: output folder (need not exist).
      filenames: plain file names the writer may write there.
      hint: how to choose another folder, appended to the errors (e.g. "set evaluate.output_dir").

  Raises:
      ValueError: a name is not a plain file name.
      NotADirectoryError: `folder` (or a parent) is a file.
      FileExistsError: `folder` holds files with those names that pdr_tf did not write (all named), or a broken
          manifest.
  """
  for filename in filenames:
    check_filename(filename)
  check_folder(folder, hint)
  foreign = foreign_files(folder, filenames, hint)
  if foreign:
    raise FileExistsError(
      f"output folder {os.fspath(folder)} already holds {', '.join(foreign)}, not written by pdr_tf (or changed "
      f"since pdr_tf wrote it); pdr_tf never overwrites such files, so nothing was written: move "
      f"{'it' if len(foreign) == 1 else 'them'} away or choose another output folder{_hint(hint)}"
    )


def _write_manifest(folder, manifest, pending=None):
  tmp = os.path.join(folder, f"{_TMP_PREFIX}{uuid.uuid4().hex}.tmp")
  data = {"files": dict(sorted(manifest.items()))}
  if pending:
    data["pending"] = dict(sorted(pending.items()))
  try:
    with open(tmp, "x", encoding="utf-8") as f:
      json.dump(data, f, indent=1)
      f.write("\n")
    os.replace(tmp, os.path.join(folder, MANIFEST))
  finally:
    if os.path.lexists(tmp):
      os.remove(tmp)


def write_file(folder, filename, write, hint=""):
  """Writes `folder`/`filename` with `write(path)` (which must create the file at `path`) and records it as pdr_tf's.

  `folder` is created if needed. Returns the path written.

  Raises:
      as `check_writable`, before anything is written.
  """
  folder = os.fspath(folder)
  check_writable(folder, [filename], hint)
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, filename)
  tmp = os.path.join(folder, f"{_TMP_PREFIX}{uuid.uuid4().hex}.tmp")
  try:
    write(tmp)
    digest = _sha256(tmp)
    manifest, pending = _read_manifest_data(folder, hint)
    _write_manifest(folder, manifest, dict(pending, **{filename: digest}))  # before the rename: never unrecorded
    os.replace(tmp, path)
  finally:
    if os.path.lexists(tmp):
      os.remove(tmp)
  manifest[filename] = digest
  pending.pop(filename, None)
  _write_manifest(folder, manifest, pending)
  return path


def remove_own(folder, filename, hint=""):
  """Removes `folder`/`filename` when it is pdr_tf's own (see the module docstring) and forgets it in the manifest.

  For an output that a writer produces only sometimes (a plot of something this run did not have): an earlier run's
  file of that name would otherwise sit beside this run's outputs as if it described them. Anything else there
  (nothing, or a foreign file) is left as it is. Returns the path removed, or None.
  """
  folder = os.fspath(folder)
  check_filename(filename)
  path = os.path.join(folder, filename)
  if not os.path.lexists(path) or foreign_files(folder, [filename], hint):
    return None
  manifest, pending = _read_manifest_data(folder, hint)
  os.remove(path)
  manifest.pop(filename, None)
  pending.pop(filename, None)
  _write_manifest(folder, manifest, pending)
  return path


def write_text(folder, filename, text, hint="", newline=None):
  """`write_file` of a UTF-8 text (`newline` as for `open`)."""

  def write(path):
    with open(path, "x", encoding="utf-8", newline=newline) as f:
      f.write(text)

  return write_file(folder, filename, write, hint)


# ------------------------------------------------------------------------------------------------- JSON reports
# A command's --json report goes to a path the user names, often in a folder of their own files, so there is no
# manifest to consult: the report marks itself instead. Its top-level REPORT_KEY names the tool that wrote it, and
# a path may be (re)written only when nothing is there or it holds a report of that same tool (so that re-running a
# documented command into its own earlier output works).
REPORT_KEY = "written_by"


def check_json_report(path, tool):
  """Why `tool` (e.g. "pdr_tf.bench") may not write its JSON report to `path`, or None when it may.

  It may when nothing is at `path` (the folders above it need not exist, but none may be a file) or `path` is a
  regular file holding a JSON object whose REPORT_KEY is `tool`. The reason, one line, names the path.
  """
  path = os.fspath(path)
  advice = f"nothing was written; choose another path for {tool}'s report"
  if os.path.isdir(path):
    example = os.path.join(path, tool.split(".")[-1] + ".json")
    return f"{path} is a folder, not a file; name a file (e.g. {example}); nothing was written"
  try:
    check_folder(os.path.dirname(os.path.abspath(path)))
  except NotADirectoryError as e:
    return f"{path}: {e}; {advice}"
  if not os.path.lexists(path):
    return None
  try:
    if os.path.islink(path) or not os.path.isfile(path):
      raise ValueError("a link or a special file")
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
    writer = data.get(REPORT_KEY) if isinstance(data, dict) else None
    if writer != tool:
      raise ValueError(f"written by {writer}" if isinstance(writer, str) else f'no "{REPORT_KEY}": "{tool}" in it')
  except (OSError, UnicodeDecodeError, ValueError) as e:  # json.JSONDecodeError is a ValueError
    reason = "not JSON" if isinstance(e, (json.JSONDecodeError, UnicodeDecodeError)) else str(e)
    return (
      f"{path} already exists and is not a report of {tool} ({reason}); pdr_tf never overwrites a file it did not "
      f"write, so {advice} or move that file away"
    )
  return None


def write_json_report(path, data, tool, indent=2):
  """Writes the JSON object `data` to `path` with `{REPORT_KEY: tool}` first, creating the folders above it.

  The file is written to a temporary name in its folder, then renamed over the old report. Returns the path.

  Raises:
      FileExistsError: `check_json_report` refuses `path` (checked again here, before anything is written).
  """
  path = os.fspath(path)
  error = check_json_report(path, tool)
  if error:
    raise FileExistsError(error)
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  report = {REPORT_KEY: tool, **{k: v for k, v in data.items() if k != REPORT_KEY}}
  tmp = os.path.join(folder, f"{_TMP_PREFIX}{uuid.uuid4().hex}.tmp")
  try:
    with open(tmp, "x", encoding="utf-8") as f:
      json.dump(report, f, indent=indent)
      f.write("\n")
    os.replace(tmp, path)
  finally:
    if os.path.lexists(tmp):
      os.remove(tmp)
  return path


def check_json_argument(parser, path, tool):
  """For an entry point's `--json PATH`: `parser.error` (a usage error, exit 2) when `tool` may not write its report
  there (`check_json_report`). Call it before the work, so that a bad path costs nothing; None asks for no report."""
  error = check_json_report(path, tool) if path else None
  if error:
    parser.error(f"--json: {error}")


def write_json_argument(path, data, tool, indent=2):
  """Writes an entry point's `--json` report (`write_json_report`); False, after logging why, when it may not (e.g. a
  file put at the path while the work ran), so that the entry point can exit 1 instead of raising."""
  try:
    write_json_report(path, data, tool, indent)
  except OSError as e:
    logging.getLogger(tool).error("--json: %s", e)
    return False
  logging.getLogger(tool).info("results written to %s", path)
  return True
