"""The README and docs/ stay navigable: every relative link names a file that exists and, with an anchor, a heading
that file has (GitHub's anchor rules), nothing points outside the repository, and every repository path a page names
in a code span exists."""

import collections
import functools
import os
import re

import pytest

import fixtures

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# [text](target) outside code spans; a target ends at the first unescaped closing parenthesis or space.
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_CODE_SPAN = re.compile(r"`[^`]*`")


def _prose_lines(path, keep_code_spans=False):
  """The lines of a markdown file with fenced code blocks blanked (line numbers kept) and, unless kept, inline code
  spans removed."""
  prose, _ = fixtures.markdown_parts(path)
  return prose if keep_code_spans else [_CODE_SPAN.sub("", line) for line in prose]


def slug(heading: str) -> str:
  """GitHub's anchor for a heading: lower case, punctuation dropped (hyphens and underscores kept), spaces to
  hyphens."""
  text = re.sub(r"[`*]", "", heading.strip().lower())
  text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading keeps its text
  text = re.sub(r"[^\w\- ]", "", text)
  return text.replace(" ", "-")


@functools.lru_cache(maxsize=None)  # a page is parsed once however many links point at it
def anchors(path):
  """Every anchor of a markdown file: one per heading, with GitHub's -1, -2 ... suffixes for repeats."""
  seen, out = collections.Counter(), set()
  for line in _prose_lines(path, keep_code_spans=True):  # a heading's code keeps its text in the anchor
    match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
    if match:
      base = slug(match.group(1))
      out.add(base if not seen[base] else f"{base}-{seen[base]}")
      seen[base] += 1
  return out


def _links(path):
  for number, line in enumerate(_prose_lines(path), 1):
    for target in _LINK.findall(line):
      if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ... are not checked here
        yield number, target


def test_slugs_follow_githubs_rules():
  assert slug("What made the de-renderer fail, and what fixed it") == "what-made-the-de-renderer-fail-and-what-fixed-it"
  assert slug("`cpu.gin` on cars, per seed") == "cpugin-on-cars-per-seed"
  assert slug("Ground truth in sight: validation during training") == "ground-truth-in-sight-validation-during-training"


def broken_links(page, root=REPO):
  """The relative links of `page` that do not resolve inside `root`, each with its line and the reason."""
  broken = []
  for number, target in _links(page):
    file_part, _, anchor = target.partition("#")
    linked = os.path.normpath(os.path.join(os.path.dirname(page), file_part)) if file_part else page
    if not linked.startswith(root + os.sep):
      broken.append(f"line {number}: {target} leaves the repository")
    elif not os.path.exists(linked):
      broken.append(f"line {number}: {target}: no file {os.path.relpath(linked, root)}")
    elif anchor and linked.endswith(".md") and anchor not in anchors(linked):
      broken.append(f"line {number}: {target}: no heading with anchor #{anchor}")
  return broken


def test_broken_links_are_found_with_their_line_and_reason(tmp_path):
  (tmp_path / "other.md").write_text(
    "# A heading\n\n## Twice\n\n## Twice\n\n## The `tf` rasterizer\n", encoding="utf-8"
  )
  page = tmp_path / "page.md"
  page.write_text(
    "[ok](other.md#a-heading) [repeat](other.md#twice-1) [self](#top) [web](https://example.com/x)"
    " [code](other.md#the-tf-rasterizer)\n"
    "# Top\n"
    "`[in code](absent.md)`\n"
    "```\n[fenced](absent.md)\n```\n"
    "[gone](absent.md) [anchor](other.md#nowhere) [out](../outside.md)\n",
    encoding="utf-8",
  )
  assert broken_links(str(page), root=str(tmp_path)) == [
    "line 7: absent.md: no file absent.md",
    "line 7: other.md#nowhere: no heading with anchor #nowhere",
    "line 7: ../outside.md leaves the repository",
  ]


@pytest.mark.parametrize("page", fixtures.DOC_PAGES, ids=lambda p: os.path.relpath(p, REPO))
def test_every_relative_link_resolves(page):
  broken = broken_links(page)
  assert not broken, "\n".join(broken)


# A code span that names a file or folder of the repository, such as `pdr_tf/data/feature_spec.py` or `gin/pieces/`
# (a test may carry its `::name`). Spans with pattern characters (`gin/<experiment>.gin`) are not paths.
_REPO_PATH = re.compile(r"`((?:pdr_tf|beam_pipelines|gin|tests|scripts|docs|\.ci)/[^`\s<>{}*\[\]|$]*)`")
# Paths that exist only in an installed package, not in a checkout.
_INSTALLED_ONLY = {"pdr_tf/configs"}


def missing_paths(path):
  """'line N: path' for every repository path a page names in a code span that does not exist."""
  with open(path, encoding="utf-8") as f:
    text = f.read()
  out = []
  for match in _REPO_PATH.finditer(text):
    named = match.group(1).rstrip(".,:;").split("::")[0]
    if named not in _INSTALLED_ONLY and not os.path.exists(os.path.join(REPO, named)):
      out.append(f"line {text.count(chr(10), 0, match.start()) + 1}: {named}")
  return out


def test_a_missing_path_is_found_with_its_line(tmp_path):
  page = tmp_path / "page.md"
  page.write_text(
    "See `pdr_tf/train.py` and `tests/test_docs.py::test_x`,\n"
    "`gin/<experiment>.gin`, `pdr_tf/configs` and `pdr_tf/no_such_module.py`.\n",
    encoding="utf-8",
  )
  assert missing_paths(str(page)) == ["line 2: pdr_tf/no_such_module.py"]


@pytest.mark.parametrize("page", fixtures.DOC_PAGES, ids=lambda p: os.path.relpath(p, REPO))
def test_every_repository_path_a_page_names_exists(page):
  missing = missing_paths(page)
  assert not missing, "\n".join(missing)
