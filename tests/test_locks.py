"""Folder locks: exclusive, and whole from the instant the lock file exists (the owner can always be named)."""

import errno
import os

import pytest

import fixtures
from pdr_tf.data import locks


def test_the_lock_file_appears_with_its_owner_already_written(tmp_path, monkeypatch):
  path = str(tmp_path / ".lock")
  seen = []
  real_link = os.link

  def link(src, dst):
    seen.append((os.path.exists(dst), locks.read_owner(src)))
    real_link(src, dst)

  monkeypatch.setattr(locks.os, "link", link)
  with locks.FolderLock(path, "a conversion") as lock:
    assert seen == [(False, lock.owner)]
    assert locks.read_owner(path) == lock.owner
    assert sorted(os.listdir(tmp_path)) == [".lock"]  # the private file is gone
  assert os.listdir(tmp_path) == []


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
  path = str(tmp_path / ".lock")
  with locks.FolderLock(path, "first job"):
    with pytest.raises(locks.LockHeldError, match=rf"in use by pid {os.getpid()} .*\(first job\)"):
      locks.FolderLock(path, "second job").acquire()
    assert sorted(os.listdir(tmp_path)) == [".lock"]


def test_without_hard_links_the_lock_is_still_exclusive_and_whole(tmp_path, monkeypatch):
  def no_link(src, dst):
    raise OSError(errno.EPERM, "hard links not supported")

  monkeypatch.setattr(locks.os, "link", no_link)
  path = str(tmp_path / ".lock")
  with locks.FolderLock(path, "first job") as lock:
    assert locks.read_owner(path) == lock.owner
    with pytest.raises(locks.LockHeldError, match="first job"):
      locks.FolderLock(path, "second job").acquire()
    assert sorted(os.listdir(tmp_path)) == [".lock"]


def test_the_lock_stress_diagnostic_counts_a_winner_per_trial_and_every_refusal_named(capsys):
  stress = fixtures.load_diagnostic("lock_stress")
  counts = stress.main(trials=2, processes=2)
  # On a busy machine a process may start after the winner let go and win too: how many win depends on the load,
  # that every refusal names the holder does not.
  assert counts["unnamed"] == 0 and counts["won"] >= 2 and counts["won"] + counts["named"] == 4
  assert "2 trials x 2 processes" in capsys.readouterr().out


def test_pid_alive_and_the_pid_space_tag():
  assert locks.pid_alive(os.getpid())
  assert not locks.pid_alive(int(open("/proc/sys/kernel/pid_max", encoding="ascii").read()) + 1)
  assert not locks.pid_alive(2**80)  # no pid is that large: not running, rather than an OverflowError
  tag = locks.pid_space_tag()
  assert len(tag) == 8 and int(tag, 16) >= 0 and tag == locks.pid_space_tag()


def _dead_owner(**changes):
  dead_pid = int(open("/proc/sys/kernel/pid_max", encoding="ascii").read()) + 1  # no process has it
  owner = {"pid": dead_pid, "host": locks.socket.gethostname(), "started": "2026-01-01T00:00:00", "purpose": "old"}
  owner.update(boot_id=locks.boot_id(), pid_namespace=locks.pid_namespace())
  owner.update(changes)
  return owner


def _write_owner(path, owner):
  with open(path, "w", encoding="utf-8") as f:
    locks.json.dump(owner, f)


@pytest.mark.parametrize(
  "changes, taken",
  [
    ({}, True),  # a dead pid of this host and container
    ({"boot_id": "an earlier boot", "pid": os.getpid()}, True),  # before the last boot: gone, whatever its pid
    ({"boot_id": None, "pid_namespace": None}, True),  # an older lock without them: judged by the pid, as before
    ({"pid_namespace": "pid:[1]"}, False),  # another container with this host's name: its pid is not ours to judge
    ({"host": "another-host"}, False),
  ],
)
def test_which_left_locks_are_taken_over(tmp_path, changes, taken):
  path = str(tmp_path / ".lock")
  owner = {k: v for k, v in _dead_owner(**changes).items() if v is not None}
  _write_owner(path, owner)
  if taken:
    with locks.FolderLock(path, "new job") as lock:
      assert locks.read_owner(path) == lock.owner and lock.owner["pid"] == os.getpid()
  else:
    with pytest.raises(locks.LockHeldError, match="if that process is known to have stopped .* delete the lock file"):
      locks.FolderLock(path, "new job").acquire()
    assert locks.read_owner(path) == owner


def test_a_stale_lock_taken_over_by_another_process_first_is_left_to_it(tmp_path, monkeypatch):
  """Two processes find the same stale lock; the first replaces it with its own before the second renames: the
  second must not move the first's live lock away (both would then run), but put it back and stop."""
  path = str(tmp_path / ".lock")
  _write_owner(path, _dead_owner())
  live = _dead_owner(pid=os.getppid(), purpose="the first process")  # a running pid of this host
  real_rename = os.rename

  def first_process_wins(src, dst):
    if src == path:
      _write_owner(path, live)  # the other process took the stale lock over a moment earlier
    real_rename(src, dst)

  monkeypatch.setattr(locks.os, "rename", first_process_wins)
  with pytest.raises(locks.LockHeldError, match=r"\(the first process\)"):
    locks.FolderLock(path, "second process").acquire()
  assert locks.read_owner(path) == live and sorted(os.listdir(tmp_path)) == [".lock"]
