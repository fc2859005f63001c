"""An in-memory object store for Beam (scheme memfs://), so that the jobs' object-store path (gs://, s3://) runs in
tests: like GCS, a folder is only a name prefix (no object, no directories), and rename is copy then delete.

Importing this module registers the scheme (Beam finds FileSystem subclasses by their scheme). Objects live in
`OBJECTS` (path -> bytes), shared by every instance in the process; the in-memory direct runner runs in-process.
"""

import io
import time

from apache_beam.io.filesystem import BeamIOError, CompressedFile, CompressionTypes, FileMetadata, FileSystem

SCHEME = "memfs"
OBJECTS = {}


class _Upload(io.BytesIO):
  """A write that becomes an object when closed, as an object-store upload does."""

  def __init__(self, path):
    super().__init__()
    self._path = path

  def close(self):
    if not self.closed:
      OBJECTS[self._path] = self.getvalue()
    super().close()


class MemFileSystem(FileSystem):
  @classmethod
  def scheme(cls):
    return SCHEME

  def join(self, basepath, *paths):
    return "/".join([basepath.rstrip("/")] + [p.strip("/") for p in paths])

  def split(self, path):
    head, _, tail = path.rstrip("/").rpartition("/")
    return head, tail

  def mkdirs(self, path):
    pass  # no folders on an object store

  def has_dirs(self):
    return False

  def _list(self, dir_or_prefix):
    for path in sorted(OBJECTS):
      if path.startswith(dir_or_prefix):
        yield FileMetadata(path, len(OBJECTS[path]), time.time())

  @staticmethod
  def _compressed(raw, path, compression_type):
    if compression_type == CompressionTypes.AUTO:
      compression_type = CompressionTypes.detect_compression_type(path)
    return raw if compression_type == CompressionTypes.UNCOMPRESSED else CompressedFile(raw, compression_type)

  def create(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
    return self._compressed(_Upload(path), path, compression_type)

  def open(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
    if path not in OBJECTS:
      raise BeamIOError(f"no object {path}", {path: FileNotFoundError(path)})
    return self._compressed(io.BytesIO(OBJECTS[path]), path, compression_type)

  def copy(self, source_file_names, destination_file_names):
    missing = {s: FileNotFoundError(s) for s in source_file_names if s not in OBJECTS}
    if missing:
      raise BeamIOError("copy failed", missing)
    for source, destination in zip(source_file_names, destination_file_names):
      OBJECTS[destination] = OBJECTS[source]

  def rename(self, source_file_names, destination_file_names):
    self.copy(source_file_names, destination_file_names)
    for source in source_file_names:
      del OBJECTS[source]

  def exists(self, path):
    return path in OBJECTS

  def size(self, path):
    return len(OBJECTS[path])

  def last_updated(self, path):
    return time.time()

  def checksum(self, path):
    return str(hash(OBJECTS[path]))

  def metadata(self, path):
    return FileMetadata(path, len(OBJECTS[path]), time.time())

  def delete(self, paths):
    errors = {}
    for path in paths:
      under = [p for p in OBJECTS if p.startswith(path.rstrip("/") + "/")]
      if path in OBJECTS:
        del OBJECTS[path]
      elif under:  # a folder: everything under its prefix, as GCS deletes a directory path
        for p in under:
          del OBJECTS[p]
      else:
        errors[path] = FileNotFoundError(path)
    if errors:
      raise BeamIOError("delete failed", errors)
