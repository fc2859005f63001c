"""Checks of configured values that name the binding and what it expects: used at construction, before any work.

gin passes whatever a file or --gin_param says, so `Trainer.global_batch_size = '4'` arrives as a string; each
configurable checks its arguments with these functions and fails with, e.g., "Trainer.global_batch_size must be
an integer >= 1, got '4' (str)".
"""

import math
import numbers
from typing import Iterable, Optional


class ConfigError(ValueError):
  """A configured value has the wrong type or is out of range; the message names the binding."""


def _got(value) -> str:
  return f"{value!r} ({type(value).__name__})"


def integer(binding: str, value, minimum: Optional[int] = None) -> int:
  """`value` as an int; ConfigError unless it is an integer (not a bool, not a string) >= minimum."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise ConfigError(f"{binding} must be an integer{_bound(minimum)}, got {_got(value)}")
  if minimum is not None and value < minimum:
    raise ConfigError(f"{binding} must be an integer{_bound(minimum)}, got {value!r}")
  return int(value)


def number(binding: str, value, minimum: Optional[float] = None, positive: bool = False) -> float:
  """`value` as a float; ConfigError unless it is a finite real number (>= minimum, or > 0 when positive)."""
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
    raise ConfigError(f"{binding} must be a finite number{_bound(minimum, positive)}, got {_got(value)}")
  if (positive and not value > 0) or (minimum is not None and value < minimum):
    raise ConfigError(f"{binding} must be a finite number{_bound(minimum, positive)}, got {value!r}")
  return float(value)


def boolean(binding: str, value) -> bool:
  """`value` as a bool; ConfigError unless it is True or False."""
  if not isinstance(value, bool):
    raise ConfigError(f"{binding} must be True or False, got {_got(value)}")
  return value


def choice(binding: str, value, choices: Iterable):
  """`value` itself; ConfigError naming the allowed values unless it is one of them."""
  choices = tuple(choices)
  if value not in choices:
    raise ConfigError(f"{binding} must be one of {', '.join(repr(c) for c in choices)}; got {_got(value)}")
  return value


def text(binding: str, value, optional: bool = False):
  """`value` itself; ConfigError unless it is a non-empty string (or None when optional)."""
  if value is None and optional:
    return None
  if not isinstance(value, str) or not value:
    raise ConfigError(f"{binding} must be a non-empty string{' or None' if optional else ''}, got {_got(value)}")
  return value


def _bound(minimum, positive=False) -> str:
  if positive:
    return " > 0"
  return f" >= {minimum}" if minimum is not None else ""
