"""Apache Beam jobs that convert the raw datasets into pdr_tf's TFRecords.

Each job is a command (`python -m beam_pipelines.<job> --input_dir ... --output_dir ...`) and a library function
(`beam_pipelines.<job>.convert(input_dir, output_dir, **options)`); `convert(job, ...)` here picks the job by name.
"""

JOBS = ("shapenet_cars", "utkface", "bbt")


def convert(job: str, input_dir, output_dir, beam_args=(), **options) -> int:
  """Converts a raw dataset with the named Beam job (see JOBS); options as the job's flags, by name.

  Returns:
    Exit status: 0 when records were written, 1 otherwise (reason logged).

  Raises:
    ValueError: an unknown job, or an option value its flag refuses (num_shards=-3). TypeError: an option the job
      does not have.
  """
  # The jobs import Apache Beam, which takes seconds: only the one asked for is imported.
  if job == "shapenet_cars":
    from beam_pipelines import shapenet_cars as module
  elif job == "utkface":
    from beam_pipelines import utkface as module
  elif job == "bbt":
    from beam_pipelines import bbt as module
  else:
    raise ValueError(f"unknown Beam job {job!r}; jobs: {', '.join(JOBS)}")
  return module.convert(input_dir, output_dir, beam_args=beam_args, **options)
