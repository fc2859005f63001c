"""Parsing gin files and bindings for the entry points, with clear errors for typos and missing files."""

import contextlib
import hashlib
import inspect
import logging
import os
import re
import tokenize
from typing import Dict, List, Sequence

import gin


def _find_gin_dir() -> str:
  """The shipped gin files: `pdr_tf/configs` in a wheel install (setup.py installs the repository's gin/ there),
  the repository's top-level gin/ in a checkout or an editable install."""
  package = os.path.dirname(os.path.abspath(__file__))
  checkout = os.path.join(os.path.dirname(package), "gin")
  for candidate in (os.path.join(package, "configs"), checkout):
    if os.path.isfile(os.path.join(candidate, "cars_light_view.gin")):
      return candidate
  return checkout


# Registration is the entry points' business: each imports the modules whose configurables its gin files bind
# (`pdr_tf.train`, `pdr_tf.reproduce`, `pdr_tf.evaluate`), so scoring a SavedModel loads no Keras network.
GIN_DIR = _find_gin_dir()


class _GinProbeFilter(logging.Filter):
  """Drops gin's root-logger noise when it probes the Python path for an include before the search paths."""

  def filter(self, record):
    return not str(record.msg).startswith(("system_path_file_exists", "Path not found"))


@contextlib.contextmanager
def _quiet_gin_probes():
  probe_filter = _GinProbeFilter()
  logging.getLogger().addFilter(probe_filter)
  try:
    yield
  finally:
    logging.getLogger().removeFilter(probe_filter)


class GinConfigError(ValueError):
  """A gin file or binding could not be applied; the message names the file or binding and the reason."""


# What gin raises on a file or binding it cannot apply. TokenError: an unclosed bracket; ValueError includes an
# undecodable file; OSError: an `include` that is missing or unreadable; ImportError: an `import` of a missing module.
PARSE_ERRORS = (ValueError, KeyError, SyntaxError, tokenize.TokenError, OSError, ImportError)


def _binding_reason(error: BaseException) -> str:
  """gin's reason for refusing a binding; for a value that is not a Python literal (ast's "malformed node or
  string", which quotes an object's address), what to write instead."""
  if "malformed node or string" in str(error):
    return "its value is not a Python literal or a gin reference; quote a string, e.g. Trainer.strategy='mirrored'"
  return str(error)


def parse(gin_files: Sequence[str], gin_params: Sequence[str] = (), clear: bool = True) -> None:
  """Clears gin (unless `clear` is False: then layers on what is parsed already) and applies files in order, then
  bindings (later ones win).

  Relative `include`s resolve against the including file's folder, the current folder and `GIN_DIR` (the shipped
  gin files). The configurables the bindings name must be registered, i.e. their modules imported, by the caller.

  Raises:
    GinConfigError: missing file, unknown configurable or parameter (typo), or malformed binding.
  """
  if clear:
    gin.clear_config()
  for path in gin_files:
    if os.path.isdir(path):
      raise GinConfigError(f"gin file {path!r} is a folder; name a .gin file (files ship under {GIN_DIR})")
    if not os.path.isfile(path):
      raise GinConfigError(f"gin file {path!r} does not exist (files ship under {GIN_DIR})")
    folder = os.path.dirname(os.path.abspath(path))
    gin.add_config_file_search_path(folder)
  gin.add_config_file_search_path(GIN_DIR)
  for path in gin_files:
    try:
      with _quiet_gin_probes():
        gin.parse_config_file(path)
    except PARSE_ERRORS as e:
      raise GinConfigError(f"gin file {path}: {e}") from e
  for binding in gin_params:
    try:
      with _quiet_gin_probes():
        gin.parse_config(binding)
    except PARSE_ERRORS as e:
      raise GinConfigError(f"--gin_param {binding!r}: {_binding_reason(e)}") from e
  check_parameter_names(gin_files, gin_params)


_INCLUDE = re.compile(r"""^\s*include\s+['"]([^'"]+)['"]""", re.MULTILINE)


def stack_files(gin_files: Sequence[str]) -> List[str]:
  """Every file a `parse(gin_files)` reads: the files and, recursively, their `include`s (absolute paths, each
  once, in the order first met). An include resolves as `parse` resolves it: against the including file's folder,
  the given files' folders, the current folder and `GIN_DIR`; one that resolves nowhere is left out (parse names
  it)."""
  roots = [os.path.dirname(os.path.abspath(p)) for p in gin_files]
  seen, order = set(), []

  def visit(path):
    path = os.path.abspath(path)
    if path in seen or not os.path.isfile(path):
      return
    seen.add(path)
    order.append(path)
    try:  # only to find the includes: an unreadable or undecodable file is named by `parse`
      with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    except OSError:
      return
    for include in _INCLUDE.findall(text):
      folders = [os.path.dirname(path), *roots, os.getcwd(), GIN_DIR]
      found = next((os.path.join(d, include) for d in folders if os.path.isfile(os.path.join(d, include))), None)
      if found:
        visit(found)

  for path in gin_files:
    visit(path)
  return order


def bindings_of(config: str) -> Dict[str, str]:
  """The bindings of an operative config text, name -> value text with runs of whitespace collapsed (a value that
  gin wraps over several indented lines is joined); comments, blank lines and imports are left out."""
  out, name = {}, None
  for line in config.splitlines():
    if not line.strip() or line.lstrip().startswith("#"):
      continue
    if not line[0].isspace() and " = " in line:
      name, value = line.split(" = ", 1)
      name = name.strip()
      out[name] = " ".join(value.split())
    elif name is not None and line[0].isspace():
      out[name] = f"{out[name]} {' '.join(line.split())}"
    else:
      name = None  # an import line, or anything that is not a binding
  return out


def changed_bindings(old: str, new: str, ignore: Sequence[str] = ()) -> List[str]:
  """Names of the bindings that both operative configs hold with different values, sorted; names in `ignore` are
  left out. A name only one of them holds is not compared: gin's operative config lists a configurable's parameters
  once it has been called, so the same run holds more of them at its end than at its start."""
  before, after = bindings_of(old), bindings_of(new)
  return sorted(n for n in set(before) & set(after) if n not in ignore and before[n] != after[n])


def stack_digest(gin_files: Sequence[str]) -> str:
  """A SHA-256 of the contents of `stack_files(gin_files)`: it changes when any file the stack reads changes."""
  digest = hashlib.sha256()
  for path in stack_files(gin_files):
    with open(path, "rb") as f:
      digest.update(os.path.basename(path).encode() + b"\0" + f.read() + b"\0")
  return digest.hexdigest()


def _named_parameters(fn):
  """Explicit parameter names of a configurable (None when it cannot be inspected)."""
  try:
    signature = inspect.signature(fn)
  except (TypeError, ValueError):
    return None
  return {
    name
    for name, p in signature.parameters.items()
    if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
  }


def check_parameter_names(gin_files=(), gin_params=()) -> None:
  """Fails on bindings to parameters a configurable does not declare.

  gin itself accepts any name for callables with **kwargs (every Keras class), so a typo such as
  `DeRenderer.zdimm` would otherwise surface only as a construction error deep inside the run.
  """
  # gin keeps parsed bindings in a private registry; there is no public API to list them.
  config = getattr(gin.config, "_CONFIG", {})
  registry = getattr(gin.config, "_REGISTRY", None)
  if registry is None:
    return
  for (scope, selector), bindings in config.items():
    configurable = registry.get_match(selector)
    if configurable is None:
      continue
    names = _named_parameters(configurable.wrapped)
    if names is None:
      continue
    for parameter in bindings:
      if parameter not in names:
        where = ", ".join(list(gin_files) + [f"--gin_param {p!r}" for p in gin_params]) or "the gin config"
        raise GinConfigError(
          f"unknown parameter {(scope + '/' if scope else '') + selector}.{parameter} (in {where}); "
          f"{selector} accepts: {', '.join(sorted(names - {'self'}))}"
        )
