"""Continuous WAL archiving of PostgreSQL to the backup target, and replaying it in a restore.

The archive of one database lives at `<prefix>/<platform>/wal/<system identifier>/<WAL file>`
(`layout.wal_directory`, then the identifier). The identifier is PostgreSQL's own name for a
database system: made by initdb, kept by every standby, base backup and restore of it. A
platform made anew under an old name (a new initdb) starts its WAL at the same file names as
the old one; without the identifier its files would overwrite (or be refused beside) the old
archive that the old backups need. A platform restored from a backup keeps the identifier
and archives into the same directory, on the new timeline its restore began, as PostgreSQL
means archives to be shared.

Three POSIX shell scripts, run by three containers:
- `ARCHIVE_SCRIPT`, PostgreSQL's archive_command (`sh SCRIPT %p %f SPOOL`, run by the server
  in its data directory): copies the file into `SPOOL/<system identifier>/` on the data
  volume, atomically (a hidden temporary name, fsync, rename), and succeeds when the same
  file is already there with the same content; a different content is refused (exit 1), as
  PostgreSQL's documentation asks, so nothing archived is ever replaced.
- `PUSH_S3_SCRIPT` and `PUSH_PVC_SCRIPT`, the `wal-archiver` sidecar: a pass moves every
  spooled file, in name order (WAL order), to the target and deletes it from the spool only
  once it is there; it stops at the first file that fails, so the archive never has a later
  file without an earlier one. A file already on the target is fine when its content is the
  same (an earlier pass stopped between the upload and the delete), refused otherwise. With
  the argument `once` the script makes one pass and exits with its outcome; otherwise it
  loops, sleeping `INTERVAL` seconds between passes.
- `recovery_script`, part of the restore init container, after the base backup is unpacked:
  archive recovery to the end of the archive (restore_command reading it), then promotion,
  checked before anything calls the data directory restored (see its docstring).
"""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime
from typing import Final

# `place FILE DEST MODE`, shared by the archive command and the claim's sidecar: FILE copied
# to DEST atomically (a hidden temporary name beside it, fsync, rename), with MODE. Success
# when DEST holds the same content already (both must be idempotent), refusal (1) when it
# holds another: nothing archived is ever replaced.
_PLACE: Final = """place() {
  dir="${2%/*}"
  mkdir -p "$dir" || return 1
  if [ -e "$2" ]; then
    if cmp -s "$1" "$2"; then
      return 0
    fi
    echo "$2 exists with a different content: not replacing it" >&2
    return 1
  fi
  tmp="$dir/.${2##*/}.tmp"
  cp "$1" "$tmp" || return 1
  chmod "$3" "$tmp" || return 1
  { sync "$tmp" 2>/dev/null || sync; } && mv "$tmp" "$2" && { sync "$dir" 2>/dev/null || sync; }
}
"""

# The archive_command's script, as a file of the server's ConfigMap. The system identifier is
# the first field of pg_control (ControlFileData.system_identifier, 8 bytes, native order),
# read with od rather than pg_controldata: the archive command runs beside a live server,
# whose control file pg_controldata would check (and warn about) mid-write.
ARCHIVE_SCRIPT: Final = (
    """set -eu
src="$1" name="$2" spool="$3"
system="$(od -A n -t u8 -N 8 global/pg_control | tr -d ' \\n')"
case "$system" in
  ''|*[!0-9]*) echo "archive-wal: cannot read the system identifier" >&2; exit 1 ;;
esac
if [ ! -d "$spool/$system" ]; then
  mkdir -p "$spool/$system"
  # The sidecar may run as another user (the backup uid, on a shared claim) in the pod's
  # group (fsGroup): it reads and deletes what is spooled.
  chmod 0770 "$spool" "$spool/$system"
fi
"""
    + _PLACE
    + """if ! place "$src" "$spool/$system/$name" 0640; then
  echo "archive-wal: $name not spooled" >&2
  exit 1
fi
"""
)

# What both sidecars share: the pass and the loop. `push FILE KEY` is defined by each target;
# KEY is `<system identifier>/<WAL file>`, the path under WAL_DIR.
_LOOP: Final = """
pass() {
  for file in "$SPOOL"/*/*; do
    [ -f "$file" ] || continue
    name="${file##*/}"
    dir="${file%/*}"
    system="${dir##*/}"
    case "$system/$name" in
      *[!0-9A-Za-z._/-]*) echo "skipping $file: not a name PostgreSQL gives" >&2; continue ;;
    esac
    if ! push "$file" "$system/$name"; then
      echo "could not archive $name: it stays in the spool, and so does every later file" >&2
      return 1
    fi
    rm -f "$file"
    echo "archived $system/$name"
  done
}
if [ "${1:-}" = once ]; then
  pass
  exit
fi
trap 'exit 0' TERM INT
while :; do
  pass || :
  sleep "${INTERVAL:-10}" &
  wait $!
done
"""

# The S3 sidecar (the AWS CLI's image): BUCKET, WAL_DIR (the key prefix of the platform's
# archive), and the CLI's own environment (endpoint, region, keys by reference, HOME). An
# object that is there already is compared by checksum after a download; a failure to look
# (other than "Not Found") keeps the file, rather than overwriting blind.
PUSH_S3_SCRIPT: Final = (
    """set -u
push() {
  key="$WAL_DIR/$2"
  if said="$(aws s3api head-object --bucket "$BUCKET" --key "$key" 2>&1 >/dev/null)"; then
    aws s3 cp --only-show-errors "s3://$BUCKET/$key" "$HOME/duet-wal-existing" || return 1
    theirs="$(cksum < "$HOME/duet-wal-existing")"
    rm -f "$HOME/duet-wal-existing"
    if [ "$(cksum < "$1")" != "$theirs" ]; then
      echo "s3://$BUCKET/$key exists with a different content: not replacing it" >&2
      return 1
    fi
    return 0
  fi
  case "$said" in
    *"Not Found"*|*404*) ;;
    *) echo "cannot tell whether s3://$BUCKET/$key exists: $said" >&2; return 1 ;;
  esac
  aws s3 cp --only-show-errors "$1" "s3://$BUCKET/$key"
}
"""
    + _LOOP
)

# The claim's sidecar (the PostgreSQL image, as the backup uid): WAL_DIR is the platform's
# archive on the mounted claim. Written as the archive command writes the spool.
PUSH_PVC_SCRIPT: Final = (
    """set -u
"""
    + _PLACE
    + """# Readable by the restore step, which runs as the server's uid, not this one.
push() { place "$1" "$WAL_DIR/$2" 0644; }
"""
    + _LOOP
)

# $0 of `sh -c SCRIPT NAME ARGS...`.
SCRIPT_NAME: Final = "duet-wal-archiver"
# A path spliced into the recovery server's options, which pg_ctl hands to a shell.
_SAFE_PATH = re.compile(r"[A-Za-z0-9/._-]+")
# How long the recovery may take before the restore step gives up (pg_ctl's --timeout).
RECOVERY_TIMEOUT_SECONDS: Final = 24 * 3600


def archive_command(script: str, spool: str) -> str:
    """The archive_command setting: the script file, the file PostgreSQL archives (%p, relative
    to the data directory, where the command runs) and its name (%f), and the spool."""
    return f"/bin/sh {shlex.quote(script)} %p %f {shlex.quote(spool)}"


def sidecar_command(script: str, *args: str) -> list[str]:
    return ["/bin/sh", "-c", script, SCRIPT_NAME, *args]


def recovery_target(moment: datetime) -> str:
    """`recovery_target_time` as PostgreSQL reads it: ISO 8601 in UTC, microseconds kept."""
    if moment.tzinfo is None:
        raise ValueError("a recovery target time needs its offset (RFC 3339)")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def recovery_script(
    archive: str,
    pgdata: str,
    work: str,
    user: str = "postgres",
    target_time: datetime | None = None,
) -> str:
    """A POSIX shell script that brings a just-unpacked base backup in `pgdata` to the end of
    the WAL archived under `archive` (`archive/<system identifier>/`), or leaves it as the
    backup was taken when there is none for this database.

    With `target_time` (point-in-time recovery) it stops there instead: `recovery_target_time`
    with `recovery_target_inclusive` (a transaction committed at exactly that moment is in) and
    `recovery_target_action = 'promote'`. Then it fails, saying why, when the target cannot be
    met: no archive for this database; a target before the base backup ended, or within the
    second it ended (the end from the archive's `.backup` history file of this backup, to the
    second, else its start from `backup_label`:
    PostgreSQL 15 itself refuses this only when a transaction committed during the backup,
    "requested recovery stop point is before consistent recovery point", and otherwise quietly
    stops at the backup's end); a target past the archive's end (PostgreSQL 15: "recovery ended
    before configured recovery target was reached"). The archive past the target is expected,
    so the check for a hole past where recovery ended is not made.

    The server is started with recovery.signal, in the background, listening on a socket in
    `work` only (whose connections `user` makes, trusted by an hba file of its own there), with
    no archive_command of its own, restore_command reading the archive, the latest timeline as
    target. hot_standby is off, so it accepts a connection only once recovery has ended and it
    has promoted itself; the script asks until `pg_is_in_recovery()` says false, giving up when
    the server has exited or after RECOVERY_TIMEOUT_SECONDS. (`pg_ctl start --wait` is not
    enough: PostgreSQL 15's said "server started" mid-recovery, and gives up after a minute.)
    Then the server is stopped (fast shutdown), and the result is checked before the caller
    goes on: the control file must say "shut down" (not "shut down in recovery"), and no file
    of the timeline recovery ended on (or a later one) may lie in the archive past the point
    where it ended: that would be WAL the archive holds but recovery could not reach, a gap,
    and a database missing it is not what was archived. Either failure exits non-zero with
    the server's words, and the data directory is not claimed restored.
    """
    for path in (archive, pgdata, work, user):
        if not _SAFE_PATH.fullmatch(path):
            raise ValueError(f"{path!r}: only letters, digits and / . _ - are allowed here")
    timeout = RECOVERY_TIMEOUT_SECONDS
    target = recovery_target(target_time) if target_time is not None else ""
    target_seconds = int(target_time.timestamp()) if target_time is not None else 0
    return f"""set -eu
data={pgdata}
work={work}
target={target}
system="$(od -A n -t u8 -N 8 "$data/global/pg_control" | tr -d ' \\n')"
case "$system" in
  ''|*[!0-9]*) echo "cannot read the system identifier of $data" >&2; exit 1 ;;
esac
wal={archive}/"$system"
if [ ! -d "$wal" ] || [ -z "$(ls -A "$wal")" ]; then
  if [ -n "$target" ]; then
    echo "no WAL archived for this database (system $system): it cannot be recovered to" \\
      "$target, only restored as the backup was taken (postgresRecovery Backup)" >&2
    exit 1
  fi
  echo "no WAL archived for this database (system $system): restored as the backup was taken"
  exit 0
fi
if [ -n "$target" ]; then
  # When the backup ended: its history file in the archive (STOP TIME), else when it began.
  start="$(sed -n 's/^START WAL LOCATION: \\([^ ]*\\) .*/\\1/p' "$data/backup_label")"
  history="$(grep -l "^START WAL LOCATION: $start " "$wal"/*.backup 2>/dev/null | head -n 1 || :)"
  if [ -n "$history" ]; then
    when="$(sed -n 's/^STOP TIME: //p' "$history")" what="ended"
  else
    when="$(sed -n 's/^START TIME: //p' "$data/backup_label")" what="began"
  fi
  # The history file says it to the second: a target within that second is refused too,
  # rather than restored to the backup's end, a little later than asked.
  if [ "$(date -u -d "$when" +%s)" -ge {target_seconds} ]; then
    echo "the recovery target $target is before the base backup $what ($when, to the" \\
      "second): a restore from it cannot go back before that; choose a later" \\
      "recoveryTargetTime or an older backup" >&2
    exit 1
  fi
  echo "replaying the WAL archived in $wal up to $target"
  set -- -c recovery_target_time="$target" -c recovery_target_inclusive=on
else
  echo "replaying the WAL archived in $wal to its end"
  set --
fi
rm -rf "$work"
mkdir -p "$work"
chmod 0700 "$work"
# Whoever reaches the socket in $work (this uid alone) is trusted: not the backup's own rules.
printf 'local all all trust\n' > "$work/pg_hba.conf"
touch "$data/recovery.signal"
postgres -D "$data" -c listen_addresses= -c unix_socket_directories="$work" \\
  -c hba_file="$work/pg_hba.conf" -c archive_mode=off -c hot_standby=off \\
  -c recovery_target_timeline=latest -c recovery_target_action=promote \\
  -c restore_command="[ -f $wal/%f ] && cp $wal/%f %p" "$@" >"$work/recovery.log" 2>&1 &
server=$!
waited=0
until [ "$(psql --host="$work" --username={user} --dbname=postgres --no-psqlrc --tuples-only \\
    --no-align --command='SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do
  if ! kill -0 "$server" 2>/dev/null || [ "$waited" -ge {timeout} ]; then
    if grep -q "recovery ended before configured recovery target was reached" \\
        "$work/recovery.log"; then
      echo "the archive ends before the recovery target $target: the WAL written up to it" \\
        "is not archived (yet, or a file is missing); choose an earlier recoveryTargetTime," \\
        "or wait for the archive to catch up" >&2
    elif grep -q "before consistent recovery point" "$work/recovery.log"; then
      echo "the recovery target $target is before the base backup ended: choose a later" \\
        "recoveryTargetTime or an older backup" >&2
    fi
    echo "archive recovery did not finish; the server said:" >&2
    tail -n 30 "$work/recovery.log" >&2
    kill -QUIT "$server" 2>/dev/null || :
    exit 1
  fi
  sleep 1
  waited=$((waited + 1))
done
# SIGINT: a fast shutdown, which ends with a checkpoint.
kill -INT "$server"
wait "$server"
grep -E 'redo done|last completed transaction|selected new timeline|archive recovery complete' \\
  "$work/recovery.log" || :
state="$(LC_ALL=C pg_controldata "$data" | sed -n 's/^Database cluster state: *//p')"
if [ "$state" != "shut down" ]; then
  echo "the recovered server stopped as '$state', not promoted: not restored" >&2
  exit 1
fi
# The newest history file is the timeline the promotion began; its last line names the one
# recovery ended on and where: "<timeline> <LSN> <reason>".
history="$(ls "$data/pg_wal" | grep -x '[0-9A-F]\\{{8\\}}\\.history' | LC_ALL=C sort | tail -n 1)"
if [ -z "$history" ]; then
  echo "recovery began no new timeline: not restored" >&2
  exit 1
fi
set -f
set -- $(grep -v '^#' "$data/pg_wal/$history" | grep . | tail -n 1)
set +f
timeline="$1" lsn="$2"
size="$(LC_ALL=C pg_controldata "$data" | sed -n 's/^Bytes per WAL segment: *//p')"
per=$(( 0x100000000 / size ))
# The file of the last byte replayed: a switch point at a file's very start leaves that
# whole file unreplayed.
ended=$(( (((0x${{lsn%/*}} << 32) + 0x${{lsn#*/}}) - 1) / size ))
if [ -n "$target" ]; then
  rm -rf "$work"
  echo "recovered to $target: timeline $timeline ended at $lsn"
  exit 0
fi
ls "$wal" | grep -x '[0-9A-F]\\{{24\\}}' | while read -r name; do
  tli="${{name%????????????????}}" segment="${{name#????????}}"
  [ $((0x$tli)) -ge "$timeline" ] || continue
  if [ $(( 0x${{segment%????????}} * per + 0x${{segment#????????}} )) -gt "$ended" ]; then
    echo "the archive holds $name, past where recovery ended (timeline $timeline at $lsn):" \\
      "a WAL file before it is missing or unreadable. Not restored: make the archive whole" \\
      "(or remove the files past the hole to give them up), then delete this pod's data" \\
      "volume claim to restore again" >&2
    exit 1
  fi
done
rm -rf "$work"
echo "recovered to the end of the archive: timeline $timeline ended at $lsn"
"""
