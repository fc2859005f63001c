"""What the `python -m pdr_tf.<name>` entry points share: their log format and the frame of a short parser."""

import argparse
import logging
import re

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level="INFO") -> None:
  """Logs at `level` (a name such as "info", or a logging constant) with LOG_FORMAT."""
  logging.basicConfig(level=level.upper() if isinstance(level, str) else level, format=LOG_FORMAT)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The other names Python's logging takes for two of them (logging.WARN, logging.FATAL).
LOG_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}


def log_level_name(text: str) -> str:
  """The LOG_LEVELS name of a --log_level value: any case, and logging's aliases WARN and FATAL taken as the names
  they stand for; an unknown name is returned upper-cased, for argparse's choices to refuse."""
  name = text.upper()
  return LOG_LEVEL_ALIASES.get(name, name)


def add_log_level(parser: argparse.ArgumentParser) -> None:
  """--log_level, any case; another name is a usage error (exit 2) naming the choices, not a traceback."""
  parser.add_argument(
    "--log_level",
    default="INFO",
    type=log_level_name,
    choices=LOG_LEVELS,
    help="Python logging level: DEBUG, INFO, WARNING (or WARN), ERROR or CRITICAL (or FATAL), any case (default INFO)",
  )


def parser(module: str, doc: str) -> argparse.ArgumentParser:
  """The parser of `python -m <module>`, described by the first line of its docstring `doc`."""
  return argparse.ArgumentParser(
    prog=f"python -m {module}", description=doc.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
  )


# What gin appends to an exception raised inside a configurable: "  In call to configurable 'X' (<function X at
# 0x...>)", one line per level. It names gin's wrapper and a memory address, nothing the user can act on.
_GIN_CONTEXT = re.compile(r"\n\s*In call to configurable '[^']*' \(<[^>]*>\)")


def error_text(error: BaseException) -> str:
  """The message of `error` for an entry point's one-line error, without gin's "In call to configurable" lines."""
  return _GIN_CONTEXT.sub("", str(error))
