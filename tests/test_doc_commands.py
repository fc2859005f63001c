"""Every command the README, docs/ and the modules' docstrings give works as written, as far as it can be checked
without running it: the module or script exists, every flag is one its parser declares, a complete command parses,
every gin file exists and every gin binding names a parameter its configurable declares. The pages' ```python
snippets import only what pdr_tf has and call it with keyword arguments it declares.

A command is a line of a fenced block (`\\` continuations joined) or an inline code span that starts with `python`
(after `nohup`, `time` or environment assignments such as `REGION=object`); `&&`, `;` and ` | ` separate commands. An
inline span that is a lone `--gin_param=...` or `--gin_file=...`, or a binding quoted in prose
(`SceneRanges.border_depth = None`), is checked as a binding or file. What a page marks as elided or to be filled in is
checked by its flag names only, not parsed whole: `...`, `[optional parts]`, `a|b` and `{a,b}` alternatives, `<run>` and
uppercase placeholders (`DATA_DIR`, `N`), and a bare `python -m pdr_tf.probe` that names the tool in prose. A
placeholder as a gin value (`Trainer.seed=N`, `Trainer.seed = k`) is checked with the value None. Other modules
(`python -m pytest`, `json.tool`) and `python -c` are not checked here, nor, since they are not recognised as
commands, ones run by another interpreter path or with interpreter options (`.venv/bin/python`, `python -u -m`):
the docs write their commands with a bare `python`.
"""

import ast
import contextlib
import functools
import importlib
import importlib.util
import inspect
import io
import os
import re
import shlex
import sys
from typing import Iterator, List, NamedTuple

import gin
import pytest

import fixtures
from pdr_tf import evaluate, gin_config, train  # noqa: F401  (registers every configurable the docs bind)

REPO = str(fixtures.REPO)
_SPAN = re.compile(r"`([^`]+)`")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$")
_BINDING = re.compile(r"^\s*[A-Z]\w*(\.\w+)*\.[a-z_]\w*\s*=\s*\S")
_SEPARATORS = re.compile(r"\s(?:&&|\|\||;|\|)\s")
_CHECKED_PACKAGES = ("pdr_tf", "beam_pipelines")
_UNBALANCED = "<unbalanced quotes>"
_USAGE_LINE = re.compile(
  r"^\s*(?:[A-Z][\w ]*:\s+)?((?:[A-Z_]+=\S+\s+)*(?:nohup\s+)?python3?\s+(?:-m\s+[\w.]+|scripts/\S+\.py).*)$", re.M
)
_SENTENCE_END = re.compile(r"(?<!\.)\.(?!\.)(?:\s|$)|:\s")
SOURCES = sorted(
  str(p) for folder in ("pdr_tf", "beam_pipelines", "scripts") for p in (fixtures.REPO / folder).rglob("*.py")
)


class Command(NamedTuple):
  page: str
  line: int
  text: str


def commands(path) -> Iterator[Command]:
  """The candidate commands of a markdown page with their line numbers: each logical line of a fenced block
  (`\\` continuations joined) and each inline code span (which may wrap over lines)."""
  prose, blocks = fixtures.markdown_parts(path)
  for _, lines in blocks:
    pending, start = "", 0
    for number, line in lines:
      if not pending:
        start = number
      if line.rstrip().endswith("\\"):
        pending += line.rstrip()[:-1] + " "
        continue
      yield Command(path, start, " ".join((pending + line).split()))
      pending = ""
  text = "\n".join(prose)
  for match in _SPAN.finditer(text):
    yield Command(path, text.count("\n", 0, match.start()) + 1, " ".join(match.group(1).split()))


def docstring_commands(path) -> Iterator[Command]:
  """The commands of a module's docstring (what `--help` and the source show): its inline code spans and its usage
  lines (a line that starts with the command, or with a label such as `Usage:`), up to the end of the sentence."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read())
  doc = ast.get_docstring(tree, clean=False)
  if not doc:
    return
  first = tree.body[0].lineno
  for match in _SPAN.finditer(doc):
    yield Command(path, first + doc.count("\n", 0, match.start()), " ".join(match.group(1).split()))
  for match in _USAGE_LINE.finditer(doc):
    text = _SENTENCE_END.split(match.group(1))[0]
    yield Command(path, first + doc.count("\n", 0, match.start(1)), " ".join(text.split()))


def _unquoted(text: str) -> str:
  """`text` without the one pair of quotes around it, if it has one (`"LooccConfig.weight = 0.1"`)."""
  text = text.strip()
  return text[1:-1] if len(text) > 1 and text[0] in "\"'" and text[-1] == text[0] else text


def _segments(text: str) -> Iterator[List[str]]:
  """The token lists of the python invocations and lone gin bindings in one command line."""
  for segment in _SEPARATORS.split(text):
    try:
      tokens = shlex.split(segment, comments=True)
    except ValueError:
      if re.match(r"\s*(\S+=\S*\s+)*(nohup\s+|time\s+)?python3?\s", segment):
        yield [_UNBALANCED, segment]  # reported by _problems
      continue
    while tokens and (_ENV.match(tokens[0]) or tokens[0] in ("nohup", "time")):
      tokens = tokens[1:]
    cut = next((i for i, t in enumerate(tokens) if re.match(r"^(\d?>|&$)", t)), len(tokens))
    tokens = tokens[:cut]
    if tokens and (tokens[0] in ("python", "python3") or tokens[0].startswith(("--gin_param", "--gin_file"))):
      yield tokens
    elif _BINDING.match(_unquoted(segment)):  # a binding in prose: `SceneRanges.border_depth = None`
      yield [f"--gin_param={_unquoted(segment)}"]


@functools.lru_cache(maxsize=None)
def _entry_parser(module: str):
  """The argparse parser of `python -m module`: the `make_parser()` of its entry module (or of the module its
  `main` comes from)."""
  spec = importlib.util.find_spec(module)
  if spec is None:
    raise LookupError(f"no module {module}")
  entry = importlib.import_module(module + ".__main__" if spec.submodule_search_locations is not None else module)
  factory = getattr(entry, "make_parser", None)
  if factory is None and hasattr(entry, "main"):
    factory = getattr(sys.modules[entry.main.__module__], "make_parser", None)
  if factory is None:
    raise LookupError(f"{entry.__name__} has no make_parser()")
  return factory()


@functools.lru_cache(maxsize=None)
def _script_parser(script: str):
  """The parser of a diagnostic script that has a `make_parser()`, else None (its arguments are positional)."""
  path = os.path.join(REPO, script)
  if os.path.dirname(os.path.abspath(path)) != str(fixtures.DIAGNOSTICS):
    return None
  with open(path, encoding="utf-8") as f:
    if "def make_parser(" not in f.read():
      return None
  return fixtures.load_diagnostic(os.path.splitext(os.path.basename(path))[0]).make_parser()


def _flag_values(args: List[str], flag: str) -> List[str]:
  values = []
  for i, token in enumerate(args):
    if token.startswith(flag + "="):
      values.append(token[len(flag) + 1 :])
    elif token == flag and i + 1 < len(args):
      values.append(args[i + 1])
  return values


def _binding_for_check(binding: str) -> str:
  """`binding` with a placeholder value (`Trainer.seed=N`, `Trainer.seed = k`) replaced by None."""
  name, _, value = binding.partition("=")
  return f"{name}=None" if _PLACEHOLDER.match(value.strip()) or re.fullmatch(r"[a-z]", value.strip()) else binding


def _gin_problems(args: List[str]) -> List[str]:
  files = _flag_values(args, "--gin_file")
  params = [_binding_for_check(p) for p in _flag_values(args, "--gin_param") if "..." not in p]
  problems = [f"gin file {f} does not exist" for f in files if not os.path.isfile(os.path.join(REPO, f))]
  if problems or not (files or params):
    return problems
  try:
    gin_config.parse([os.path.join(REPO, f) for f in files], params)
  except gin_config.GinConfigError as e:
    problems.append(str(e).split("\n")[0])
  finally:
    gin.clear_config()
  return problems


def _parse_problems(parser, args: List[str], known_only: bool) -> List[str]:
  """What argparse says of `args` (the last line of its usage error), or nothing when they parse."""
  err = io.StringIO()
  with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
    try:
      (parser.parse_known_args if known_only else parser.parse_args)(args)
    except SystemExit as e:
      if e.code:
        return [f"does not parse: {err.getvalue().strip().splitlines()[-1]}"]
  return []


def _problems(tokens: List[str]) -> List[str]:
  """Why the invocation `tokens` would not work as written (empty when it checks out)."""
  if tokens[0] == _UNBALANCED:
    return [f"unbalanced quotes in {tokens[1].strip()!r}"]
  if tokens[0].startswith(("--gin_param", "--gin_file")):
    return _gin_problems(tokens)
  if len(tokens) < 2:
    return []
  if tokens[1] == "-m" and len(tokens) > 2:
    module, args = tokens[2], tokens[3:]
    if module.split(".")[0] not in _CHECKED_PACKAGES or not re.fullmatch(r"[\w.]+", module):
      return []  # another tool's module, or a pattern such as beam_pipelines.{utkface,bbt}
    try:
      parser = _entry_parser(module)
    except (LookupError, ImportError) as e:
      return [f"python -m {module}: {e}"]
    beam = module.startswith("beam_pipelines")
  elif tokens[1].endswith(".py"):
    script, args = tokens[1], tokens[2:]
    if not os.path.isfile(os.path.join(REPO, script)):
      return [f"{script} does not exist"]
    parser, beam = _script_parser(script), False
  else:
    return []
  problems = _gin_problems(args)
  if parser is None:
    return problems
  # A bare `python -m pdr_tf.probe` names the tool in prose; `<run>`-style placeholders may hold spaces.
  elided = not args or any("..." in t or re.search(r"[][|<>]", t) or _PLACEHOLDER.match(t) for t in args)
  if not beam:  # a Beam job passes the flags it does not know on to Beam
    known = set(parser._option_string_actions)  # pylint: disable=protected-access
    problems += [f"unknown flag {t.split('=')[0]}" for t in args if t.startswith("--") and t.split("=")[0] not in known]
  if not elided and not problems:
    problems += _parse_problems(parser, args, known_only=beam)
  return problems


def page_problems(path, extract=commands) -> List[str]:
  """'page:line: command: reason' for every command `extract` finds in a file that would not work as written."""
  out = []
  for command in extract(path):
    for tokens in _segments(command.text):
      for problem in _problems(tokens):
        out.append(f"{os.path.relpath(command.page, REPO)}:{command.line}: {command.text}: {problem}")
  return out


def python_blocks(path) -> Iterator[Command]:
  """The ```python blocks of a markdown page, each with the line of its first statement."""
  for language, lines in fixtures.markdown_parts(path)[1]:
    if language == "python" and lines:
      yield Command(path, lines[0][0], "\n".join(line for _, line in lines))


def _call_problems(function, call: ast.Call, name: str) -> List[str]:
  """Keyword arguments of `call` that `function` does not accept."""
  try:
    parameters = inspect.signature(function).parameters
  except (TypeError, ValueError):
    return []
  if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
    return []
  return [f"{name}() takes no argument {k.arg!r}" for k in call.keywords if k.arg and k.arg not in parameters]


def python_block_problems(block: Command) -> List[str]:
  """Why a documented snippet would not run as written, as far as its use of pdr_tf shows without running it: every
  pdr_tf module it imports exists, every name it imports or reads from one exists, and every call of such a name
  passes only keyword arguments the function declares."""
  try:
    tree = ast.parse(block.text)
  except SyntaxError as e:
    return [f"line {block.line + (e.lineno or 1) - 1}: does not parse: {e.msg}"]
  bound, problems = {}, []
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in _CHECKED_PACKAGES:
      for alias in node.names:
        try:
          module = importlib.import_module(node.module)
          try:
            bound[alias.asname or alias.name] = importlib.import_module(f"{node.module}.{alias.name}")
          except ImportError:
            bound[alias.asname or alias.name] = getattr(module, alias.name)
        except (ImportError, AttributeError):
          problems.append(f"line {block.line + node.lineno - 1}: cannot import {alias.name} from {node.module}")
    elif isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name.split(".")[0] in _CHECKED_PACKAGES:
          try:
            bound[alias.asname or alias.name] = importlib.import_module(alias.name)
          except ImportError:
            problems.append(f"line {block.line + node.lineno - 1}: no module {alias.name}")
  for node in ast.walk(tree):
    target = node.func if isinstance(node, ast.Call) else node
    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id in bound:
      owner, where = bound[target.value.id], f"line {block.line + node.lineno - 1}"
      if not hasattr(owner, target.attr):
        problems.append(f"{where}: {target.value.id}.{target.attr} does not exist")
      elif isinstance(node, ast.Call):
        problems += [f"{where}: {p}" for p in _call_problems(getattr(owner, target.attr), node, target.attr)]
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in bound:
      problems += [
        f"line {block.line + node.lineno - 1}: {p}" for p in _call_problems(bound[node.func.id], node, node.func.id)
      ]
  return sorted(set(problems))


@pytest.mark.parametrize("page", fixtures.DOC_PAGES, ids=lambda p: os.path.relpath(p, REPO))
def test_every_python_snippet_uses_what_pdr_tf_has(page):
  problems = [
    f"{os.path.relpath(page, REPO)}:{p}" for block in python_blocks(page) for p in python_block_problems(block)
  ]
  assert not problems, "\n".join(problems)


def test_a_broken_snippet_is_reported_with_its_line():
  snippet = Command(
    "page.md",
    10,
    "from pdr_tf import synthetic, no_such_module\n"
    "from pdr_tf.data import input_pipeline\n"
    "synthetic.generate('cars', 'x', seed=0, train_models_per_clas=5)  # **sizes: checked when it runs\n"
    "input_pipeline.make_datasett('x', 'train')\n"
    "input_pipeline.make_dataset('x', 'train', batch_size=4)  # fine\n"
    "input_pipeline.make_dataset('x', 'train', batch_sise=4)\n",
  )
  assert python_block_problems(snippet) == [
    "line 10: cannot import no_such_module from pdr_tf",
    "line 13: input_pipeline.make_datasett does not exist",
    "line 15: make_dataset() takes no argument 'batch_sise'",
  ]
  assert python_block_problems(Command("page.md", 3, "x = (")) == ["line 3: does not parse: '(' was never closed"]


@pytest.mark.parametrize("page", fixtures.DOC_PAGES, ids=lambda p: os.path.relpath(p, REPO))
def test_every_documented_command_checks_out(page):
  problems = page_problems(page)
  assert not problems, "\n".join(problems)


def test_every_command_in_a_module_docstring_checks_out():
  problems = [problem for path in SOURCES for problem in page_problems(path, docstring_commands)]
  assert not problems, "\n".join(problems)


def test_the_readme_quick_start_is_among_the_checked_commands():
  readme = os.path.join(REPO, "README.md")
  invocations = [tokens for command in commands(readme) for tokens in _segments(command.text)]
  assert ["python", "-m", "pdr_tf.train", "--gin_file=gin/cars_light_view.gin", "--gin_file=gin/quick.gin"] in (
    invocations
  )
  assert ["python", "-m", "pytest", "tests"] in invocations


BROKEN_PAGE = """# A page with broken commands

```bash
python -m pdr_tf.train --gin_file=gin/cars_light_view.gin --gin_fil=gin/quick.gin
python -m pdr_tf.train --gin_file=gin/no_such.gin
python -m pdr_tf.train --gin_file=gin/cars_light_view.gin \\
  --gin_param=DeRenderer.zdimm=3
python -m pdr_tf.train --gin_file=gin/cars_light_view.gin --gin_param=Trainer.seed=N   # fine: a placeholder
python -m pdr_tf.no_such_entry_point --flag
python -m pdr_tf.reproduce --suite cars --seeds three
nohup python -m pdr_tf.reproduce --suite cars --preset cpu --no_progress > log 2>&1 &
```

Inline: `python scripts/diagnostics/no_such_script.py WORKDIR`, `python -m pdr_tf.evaluate
--gin_file=gin/eval_cars.gin --gin_param=evaluate.nope=1`, a lone `--gin_param=Trainer.no_such_parameter=1`,
`python -m pdr_tf.synthetic --world faces|cars --output_dir DIR` (alternatives: flags checked by name only) and
`python -m pdr_tf.probe --workdir <run> --data_dir DATA --stepp 3`; in prose, `Trainer.learning_rte = 1e-3` and
`python scripts/diagnostics/world_statistics.py data/x --jsn x.json`, `--gin_file=gin/nope.gin` and
`python -m pdr_tf.train --gin_param="A.b=1`.
"""


def test_a_broken_command_is_reported_with_its_page_line_and_reason(tmp_path):
  page = tmp_path / "page.md"
  page.write_text(BROKEN_PAGE, encoding="utf-8")
  problems = "\n".join(page_problems(str(page)))
  expected = [
    ":4: python -m pdr_tf.train --gin_file=gin/cars_light_view.gin --gin_fil=gin/quick.gin: unknown flag --gin_fil",
    ":5: python -m pdr_tf.train --gin_file=gin/no_such.gin: gin file gin/no_such.gin does not exist",
    ":6: python -m pdr_tf.train --gin_file=gin/cars_light_view.gin --gin_param=DeRenderer.zdimm=3: unknown parameter",
    ":9: python -m pdr_tf.no_such_entry_point --flag: python -m pdr_tf.no_such_entry_point: no module",
    ":10: python -m pdr_tf.reproduce --suite cars --seeds three: does not parse: ",
    ":14: python scripts/diagnostics/no_such_script.py WORKDIR: scripts/diagnostics/no_such_script.py does not exist",
    ":14: python -m pdr_tf.evaluate --gin_file=gin/eval_cars.gin --gin_param=evaluate.nope=1: ",
    ":15: --gin_param=Trainer.no_such_parameter=1: ",
    "--stepp 3: unknown flag --stepp",
    ":17: Trainer.learning_rte = 1e-3: ",
    ":18: python scripts/diagnostics/world_statistics.py data/x --jsn x.json: unknown flag --jsn",
    ":18: --gin_file=gin/nope.gin: gin file gin/nope.gin does not exist",
    ":19: python -m pdr_tf.train --gin_param=\"A.b=1: unbalanced quotes in 'python -m pdr_tf.train",
  ]
  for line in expected:
    assert line in problems, f"{line!r} not in:\n{problems}"
  assert "Trainer.seed=N" not in problems and "nohup" not in problems and "faces|cars" not in problems
  assert len(problems.splitlines()) == len(expected), problems


@pytest.mark.parametrize(
  "module",
  [
    "pdr_tf.train",
    "pdr_tf.evaluate",
    "pdr_tf.export",
    "pdr_tf.probe",
    "pdr_tf.grids",
    "pdr_tf.bench",
    "pdr_tf.synthetic",
    "pdr_tf.reproduce",
    "pdr_tf.ablation",
    "beam_pipelines.utkface",
    "beam_pipelines.shapenet_cars",
    "beam_pipelines.bbt",
    "pdr_tf.benchmarks.data",
    "pdr_tf.benchmarks.coarse_depth",
    "pdr_tf.benchmarks.rasterizer",
  ],
)
def test_every_entry_point_takes_a_log_level_by_name_and_refuses_another(module):
  (action,) = [a for a in _entry_parser(module)._actions if "--log_level" in a.option_strings]
  assert action.default == "INFO" and action.type("debug") == "DEBUG"
  assert action.type("warn") == "WARNING" and action.type("Fatal") == "CRITICAL"  # logging's own aliases
  assert set(action.choices) == {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
