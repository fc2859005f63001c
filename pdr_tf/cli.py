"""What the `python -m pdr_tf.<name>` entry points share: their log format and the frame of a short parser."""

import argparse
import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level="INFO") -> None:
  """Logs at `level` (a name such as "info", or a logging constant) with LOG_FORMAT."""
  logging.basicConfig(level=level.upper() if isinstance(level, str) else level, format=LOG_FORMAT)


def parser(module: str, doc: str) -> argparse.ArgumentParser:
  """The parser of `python -m <module>`, described by the first line of its docstring `doc`."""
  return argparse.ArgumentParser(
    prog=f"python -m {module}", description=doc.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
  )
