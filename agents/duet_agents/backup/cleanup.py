"""Deleting what expired backup runs wrote: the POSIX shell scripts of the cleanup step.

Each run is an argument (`sh -c SCRIPT cleanup RUN...`), never spliced into the script, and
is a path the operator has already checked with `layout.run_directory`. The scripts check
again what only the place itself can tell, and refuse before deleting anything:
- a volume: every run must be a directory reached without a symbolic link (a link planted
  on the shared claim could point anywhere the pod can write), under `$BACKUP_ROOT`;
- a bucket: the run is a key prefix, deleted with the AWS CLI (`aws s3 rm --recursive`,
  endpoint, region and keys from the environment), the tool that uploaded it.
A run already gone is not an error, so a retried cleanup finishes what a failed one began.
What a step prints on failure is its log's tail, which the operator quotes in the Warning it
posts (the Job runs with `terminationMessagePolicy: FallbackToLogsOnError`).
"""

from __future__ import annotations

from typing import Final

# Anything absolute, empty or with `..` is refused by the scripts themselves as well, and so
# is anything whose last part is not a run's stamp (`layout.STAMP_FORMAT`): a directory above
# the runs would otherwise take every run of a platform, or every platform, with it.
_REFUSE_SHAPES: Final = """for run in "$@"; do
  case "$run" in
    ''|/*|*..*) echo "refusing to delete '$run': not a run of this platform" >&2; exit 1 ;;
  esac
  case "${run##*/}" in
    [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z) ;;
    *) echo "refusing to delete '$run': not a run of this platform" >&2; exit 1 ;;
  esac
done
"""

PVC_SCRIPT: Final = (
    "set -eu\n"
    + _REFUSE_SHAPES
    + """root="$(cd -P -- "$BACKUP_ROOT" && pwd -P)"
for run in "$@"; do
  dir="$root/$run"
  if [ -L "$dir" ] || { [ -e "$dir" ] && [ ! -d "$dir" ]; }; then
    echo "refusing to delete $run: not a directory" >&2; exit 1
  fi
  if [ -d "$dir" ] && [ "$(cd -P -- "$dir" && pwd -P)" != "$dir" ]; then
    echo "refusing to delete $run: reached through a symbolic link" >&2; exit 1
  fi
done
for run in "$@"; do
  if [ -d "$root/$run" ]; then
    rm -rf -- "$root/$run"
    echo "deleted $run"
  else
    echo "$run was already gone"
  fi
done
"""
)

S3_SCRIPT: Final = (
    "set -eu\n"
    + _REFUSE_SHAPES
    + """for run in "$@"; do
  aws s3 rm --recursive --only-show-errors "s3://$BUCKET/$run/"
  echo "deleted s3://$BUCKET/$run/"
done
"""
)

# $0 of `sh -c SCRIPT NAME ARGS...`: what the shell calls itself in its messages.
SCRIPT_NAME: Final = "duet-backup-cleanup"


def cleanup_command(script: str, runs: list[str]) -> list[str]:
    """The container command: the script, then each run as its own argument."""
    return ["/bin/sh", "-c", script, SCRIPT_NAME, *runs]
