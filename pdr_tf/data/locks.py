"""One writer per folder: a lock file holding its owner's pid, host and start time, with stale locks taken over.

A training work dir and a Beam job's output folder each have one writer. The lock is a small JSON file that appears
atomically with its content (written to a private file, then hard-linked to the lock path, which fails when the path
exists), so of two processes started together exactly one gets it and the other stops with an error naming the first
(pid, host, start time): the lock file is never seen empty. A lock left by a process that died on this host, or
before this host's last boot, is stale: the next process takes it over and says so in the log. Locks of another host,
or of another container sharing this host's name (another pid namespace), cannot be checked and are never broken;
the refusal says to delete the lock file if its process is known to be gone.
"""

import datetime
import hashlib
import json
import logging
import os
import socket
import weakref

logger = logging.getLogger(__name__)

_UNREADABLE_GRACE_S = 60.0  # an unreadable lock file older than this is a crashed writer's, not one being written
# The locks this process holds (absolute path -> weak reference to the FolderLock). A lock file carrying this
# process's pid is held while its FolderLock lives; one left by an object that is gone (never released) is stale.
_HELD_HERE = {}


class LockHeldError(RuntimeError):
  """The folder is locked by another live process; the message names it."""


def pid_alive(pid: int) -> bool:
  """Whether a process with this pid runs on this host (one owned by another user counts)."""
  try:
    os.kill(pid, 0)
  except (ProcessLookupError, OverflowError):  # none, or a number no pid can be
    return False
  except PermissionError:  # exists, owned by someone else
    return True
  return True


def read_owner(path: str):
  """The owner dict {pid, host, started, purpose, boot_id, pid_namespace} of a lock file (older ones lack the last
  two), or None when it is missing or unreadable."""
  try:
    with open(path, encoding="utf-8") as f:
      owner = json.load(f)
  except (OSError, ValueError):
    return None
  return owner if isinstance(owner, dict) else None


def describe(owner) -> str:
  """'pid 123 on host h since 2026-12-01T10:00:00 (purpose)' for messages."""
  if not owner:
    return "an unknown process"
  return f"pid {owner.get('pid')} on host {owner.get('host')} since {owner.get('started')}" + (
    f" ({owner['purpose']})" if owner.get("purpose") else ""
  )


def _read_identity(read, path) -> str:
  try:
    return read(path).strip()
  except OSError:  # not Linux, or /proc not mounted
    return ""


def boot_id() -> str:
  """This machine's boot id (Linux; "" elsewhere): it changes at every boot, so no process outlives it."""
  return _read_identity(lambda p: open(p, encoding="ascii").read(), "/proc/sys/kernel/random/boot_id")


def pid_namespace() -> str:
  """The pid namespace this process lives in (Linux, e.g. "pid:[4026531836]"; "" elsewhere)."""
  return _read_identity(os.readlink, "/proc/self/ns/pid")


def pid_space_tag() -> str:
  """A short, file-name-safe tag (8 hex digits) of the pid numbering this process lives in: its host name, boot and
  pid namespace. Two processes with the same tag can judge each other's pids (`pid_alive`); a container that shares
  the host's name (host networking) but has its own pids, or a cloned machine with the same name, gets another."""
  identity = [socket.gethostname(), boot_id(), pid_namespace()]
  return hashlib.sha1("\n".join(identity).encode("utf-8")).hexdigest()[:8]


def _create_with_content(path: str, owner: dict) -> None:
  """Creates `path` holding `owner` as JSON, atomically; FileExistsError when `path` exists.

  The content is written to a private file first and hard-linked to `path`: link(2) fails when `path` exists, so
  creation is exclusive, and whoever sees the lock file sees it whole (an O_EXCL create followed by a write leaves an
  instant where a second process reads an empty file and cannot name the owner). On a file system without hard links
  the lock falls back to an exclusive create and a write.
  """
  private = f"{path}.{os.getpid()}.new"
  with open(private, "w", encoding="utf-8") as f:
    json.dump(owner, f)
  try:
    os.link(private, path)
  except FileExistsError:
    raise
  except OSError:  # no hard links here (some network or FUSE file systems)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      json.dump(owner, f)
  finally:
    os.remove(private)


class FolderLock:
  """A lock file at `path` (a context manager); `acquire` raises LockHeldError while another live process holds it.

  Args:
    path: the lock file, e.g. <workdir>/.pdr_tf_train.lock.
    purpose: what the owner is doing, shown to whoever is refused.
  """

  def __init__(self, path: str, purpose: str = ""):
    self.path = path
    self.purpose = purpose
    self.owner = None

  def acquire(self) -> "FolderLock":
    owner = {
      "pid": os.getpid(),
      "host": socket.gethostname(),
      "started": datetime.datetime.now().isoformat(timespec="seconds"),
      "purpose": self.purpose,
      "boot_id": boot_id(),  # with the pid namespace: whether this host can judge the pid (`_is_stale`)
      "pid_namespace": pid_namespace(),
    }
    for _ in range(3):  # a stale lock is moved away and creation retried; give up after a few races
      try:
        _create_with_content(self.path, owner)
      except FileExistsError:
        held = read_owner(self.path)
        if not self._is_stale(held):
          raise self._held_error(held) from None
        # Move the stale file away atomically: of two processes doing this, one wins the rename.
        stale = f"{self.path}.stale-{os.getpid()}"
        try:
          os.rename(self.path, stale)
        except FileNotFoundError:
          continue
        moved = read_owner(stale)
        if moved != held:  # another process took the stale lock over first: what was moved is its live lock
          self._put_back(stale)
          raise self._held_error(moved) from None
        if held.get("pid") == os.getpid():
          logger.debug("Re-taking %s, left by this process", self.path)
        else:
          logger.warning("Taking over the stale lock %s of %s, which is no longer running", self.path, describe(held))
        os.remove(stale)
        continue
      self.owner = owner
      _HELD_HERE[os.path.abspath(self.path)] = weakref.ref(self)
      return self
    raise LockHeldError(f"could not take the lock {self.path}: other processes keep taking it")

  def _held_error(self, held) -> LockHeldError:
    return LockHeldError(
      f"{os.path.dirname(self.path) or '.'} is in use by {describe(held)}; lock file {self.path}. Wait for it to "
      "finish, or use another folder. A lock of another host or container is never taken over: if that process is "
      "known to have stopped (its machine or container is gone), delete the lock file."
    )

  def _put_back(self, moved: str) -> None:
    """Returns a live lock moved away by mistake to its path (unless a third process has created one meanwhile)."""
    try:
      os.link(moved, self.path)
    except OSError:
      pass
    os.remove(moved)

  def _is_stale(self, held) -> bool:
    if held is None:  # unreadable: being written right now, or left half-written by a crash long ago
      try:
        return datetime.datetime.now().timestamp() - os.path.getmtime(self.path) > _UNREADABLE_GRACE_S
      except OSError:
        return False
    if held.get("host") != socket.gethostname():
      return False
    if held.get("boot_id") and boot_id() and held["boot_id"] != boot_id():
      return True  # written before this machine last booted: its process cannot be running
    if held.get("pid_namespace", pid_namespace()) != pid_namespace():
      return False  # another container sharing the host's name: its pids are not this one's to judge
    pid = held.get("pid")
    if pid == os.getpid():  # this process: stale unless a live FolderLock here still holds it
      holder = _HELD_HERE.get(os.path.abspath(self.path))
      return holder is None or holder() is None
    return isinstance(pid, int) and not pid_alive(pid)

  def release(self) -> None:
    """Removes the lock file if this process still owns it."""
    if self.owner is None:
      return
    _HELD_HERE.pop(os.path.abspath(self.path), None)
    current = read_owner(self.path)
    if current and current.get("pid") == self.owner["pid"] and current.get("host") == self.owner["host"]:
      try:
        os.remove(self.path)
      except FileNotFoundError:
        pass
    self.owner = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()
    return False
