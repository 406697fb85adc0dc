"""Pruning PostgreSQL's WAL archive: what no kept base backup needs any more.

A restore reads the archive from where its base backup starts on, so every archived file that
lies before the start of the oldest base backup still kept can go. The start is read from that
backup's `backup_manifest` (pg_basebackup writes it beside `base.tar.gz`, on the claim or in the
bucket as it is): its `WAL-Ranges` say on which timeline and at which LSN the backup's WAL
begins. The manifest is part of the run, so it is there whenever the run is, on both targets;
the `.backup` history file the archive gets (`<segment>.<offset>.backup`) is only there if
archiving worked at the time, and names no run. It does name the database, though, by the
directory it is in: the manifest (version 1, PostgreSQL 15) has no system identifier, so the
archive directory `wal/<system identifier>/` of the backup is the one whose history file of
that start says the same start and end. No such file, or more than one, and nothing is pruned.

The rules (`prunable`, and the same in the scripts): with the cutoff `TTTTTTTT SSSSSSSSSSSSSSSS`
(the segment holding the backup's start, on its timeline), a WAL segment, a `.partial` segment
or a `.backup` history file goes when its timeline is the cutoff's or older and its segment
comes before the cutoff's. `.history` files always stay (tiny, and a restore across timelines
needs them); so do later timelines (they may branch off before the cutoff, toward a newer kept
backup) and anything not named as PostgreSQL names WAL.

The pure functions are the reference; `PVC_PRUNE_SCRIPT` and `S3_PRUNE_SCRIPT` do the same in
the cleanup Job's shell (the images have no Python), where the target is. They take the oldest
kept run, `<platform dir>/<stamp>`, from `KEEP_FROM` (never spliced into the script), refuse a
run that is not shaped like one, and refuse to delete anything but a WAL file name inside
`<platform dir>/wal/<digits>/`. Whatever keeps them from knowing the start (no manifest, no
WAL-Ranges, no history file or several, a segment not 16 MiB) prunes nothing and says why.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

# PostgreSQL's default, which Duet's initdb keeps (no --wal-segsize). The scripts refuse to
# prune an archive whose segments are another size rather than cut it in the wrong place.
SEGMENT_SIZE: Final = 16 * 1024 * 1024
_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")
_HEX = "[0-9A-F]"
# A segment name (timeline, then the segment number in two halves), alone, as the partial
# segment a promotion archives, or as a backup history file (`.<offset>.backup`).
_WAL_NAME = re.compile(
    r"(?P<tli>[0-9A-F]{8})(?P<seg>[0-9A-F]{16})(\.partial|\.[0-9A-F]{8}\.backup)?"
)
_HISTORY = re.compile(r"[0-9A-F]{8}\.history")


def parse_lsn(text: str) -> int:
    """`0/2000028` (PostgreSQL's `%X/%X`) -> 33554472; ValueError otherwise."""
    match = _LSN.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not an LSN like 0/2000028")
    return (int(match[1], 16) << 32) | int(match[2], 16)


def segment_number(lsn: int, segment_size: int = SEGMENT_SIZE) -> int:
    """The segment that holds the byte at `lsn` (PostgreSQL's XLByteToSeg). Not
    pg_walfile_name's rule, which takes the byte before (XLByteToPrevSeg) and so names the
    previous segment for an LSN right at a segment's start; a backup's start is never there
    (a record begins after the page header), and its history file is named by this one."""
    return lsn // segment_size


def segment_name(timeline: int, lsn: int, segment_size: int = SEGMENT_SIZE) -> str:
    """The WAL file that holds `lsn` on `timeline` (XLogFileName of XLByteToSeg)."""
    per = 0x1_0000_0000 // segment_size
    number = segment_number(lsn, segment_size)
    return f"{timeline:08X}{number // per:08X}{number % per:08X}"


def backup_history_name(timeline: int, lsn: int, segment_size: int = SEGMENT_SIZE) -> str:
    """The history file a base backup starting at `lsn` leaves in the archive
    (BackupHistoryFileName): `<segment>.<offset in it>.backup`."""
    return f"{segment_name(timeline, lsn, segment_size)}.{lsn % segment_size:08X}.backup"


@dataclass(frozen=True)
class BackupWal:
    """Where a base backup's WAL begins and ends, from its manifest."""

    timeline: int  # the one it started on
    start: int  # LSN
    end: int  # LSN, on the last timeline

    def cutoff(self, segment_size: int = SEGMENT_SIZE) -> str:
        """The first archived file this backup needs: every WAL file before it may go."""
        return segment_name(self.timeline, self.start, segment_size)


def backup_wal(manifest: str) -> BackupWal:
    """The WAL a base backup needs, from its `backup_manifest`: the range with the oldest
    timeline starts it (a backup that saw a timeline switch lists one range per timeline),
    the newest ends it. ValueError when the manifest says nothing about WAL."""
    try:
        ranges = json.loads(manifest)["WAL-Ranges"]
        parsed = [
            (int(r["Timeline"]), parse_lsn(str(r["Start-LSN"])), parse_lsn(str(r["End-LSN"])))
            for r in ranges
        ]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"not a backup manifest with WAL-Ranges: {e}") from e
    if not parsed:
        raise ValueError("the backup manifest lists no WAL range")
    first, last = min(parsed), max(parsed)
    return BackupWal(timeline=first[0], start=first[1], end=last[2])


def prunable(names: Iterable[str], cutoff: str) -> list[str]:
    """The archived files (names in one `wal/<system>/` directory) that no restore from a
    backup starting at segment `cutoff` reads: WAL, partial and backup history files on its
    timeline or an older one, before its segment. History files and other names stay."""
    wanted = _WAL_NAME.fullmatch(cutoff)
    if wanted is None or wanted[3] is not None:
        raise ValueError(f"{cutoff!r} is not a WAL segment name")
    timeline, segment = int(wanted["tli"], 16), wanted["seg"]
    gone = []
    for name in names:
        match = _WAL_NAME.fullmatch(name)
        if match and int(match["tli"], 16) <= timeline and match["seg"] < segment:
            gone.append(name)
    return sorted(gone)


def is_history(name: str) -> bool:
    return _HISTORY.fullmatch(name) is not None


# -- the scripts -------------------------------------------------------------------------------

_SEG = _HEX * 24
_OFFSET = _HEX * 8

# What both targets share, after each has defined `fetch KEY FILE` (a file of the archive or of
# a run, relative to the platform's root on the target), `list_wal` (every file under
# `$wal/`, as `<system>/<name> <bytes>` lines) and `remove SYSTEM` (the names on stdin, in
# `$wal/SYSTEM/`). `wal_file PATH` is the guard: a WAL file name (not `.history`) inside
# `$wal/<digits>/`, nothing else. `prune_wal` is called last, with set -eu in force.
PRUNE_FUNCTIONS: Final = (
    """
wal_file() {
  case "$1" in "$wal"/*/*) ;; *) return 1 ;; esac
  rest="${1#"$wal"/}"
  case "${rest%%/*}" in ''|*[!0-9]*) return 1 ;; esac
  case "${rest#*/}" in
    """
    + f"{_SEG}|{_SEG}.partial|{_SEG}.{_OFFSET}.backup"
    + """) return 0 ;;
  esac
  return 1
}
# `segment_number NAME`: the segment number of a WAL file name (its 16 hex digits after the
# timeline), as in recovery_script.
segment_number() {
  rest="${1#????????}"
  seg="${rest%"${rest#????????????????}"}"
  echo $(( 0x${seg%????????} * per + 0x${seg#????????} ))
}
# `cutoff_of TIMELINE LSN`: the segment holding LSN on TIMELINE, and the history file name
# of a backup starting there (XLByteToSeg, XLogFileName, BackupHistoryFileName).
cutoff_of() {
  hi="${2%/*}" lo="${2#*/}"
  number=$(( ((0x$hi << 32) + 0x$lo) / size ))
  name="$(printf '%08X%08X%08X' "$1" $((number / per)) $((number % per)))"
  printf '%s %s.%08X.backup\\n' "$name" "$name" $(( 0x$lo % size ))
}
refuse_keep() {
  echo "refusing to prune WAL before '$1': not a run of this platform" >&2
  exit 1
}
prune_wal() {
  keep="${KEEP_FROM:-}"
  case "$keep" in ''|/*|*..*|*//*|*/) refuse_keep "$keep" ;; esac
  case "${keep##*/}" in
    [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z) ;;
    *) refuse_keep "$keep" ;;
  esac
  case "$keep" in */*) ;; *) refuse_keep "$keep" ;; esac
  wal="${keep%/*}/wal"
  # Keys go into S3's JSON: only what an S3 prefix may hold (S3_PREFIX_PATTERN) passes.
  case "$wal" in *[!0-9A-Za-z!_.*\\'\\(\\)/-]*) refuse_keep "$keep" ;; esac
  size="""
    + str(SEGMENT_SIZE)
    + """
  per=$(( 0x100000000 / size ))
  tmp="$(mktemp -d)"
  if ! fetch "$keep/postgres/backup_manifest" "$tmp/manifest" 2>"$tmp/said"; then
    echo "WAL archive kept: $keep has no readable postgres/backup_manifest, so where its WAL" \\
      "begins is unknown ($(tail -n 1 "$tmp/said"))"
    rm -rf "$tmp"; return 0
  fi
  # pg_basebackup writes one range per line: { "Timeline": N, "Start-LSN": "X/X", "End-LSN": "X/X" }
  lsn='\\([0-9A-F]*/[0-9A-F]*\\)'
  range='^{ "Timeline": \\([0-9][0-9]*\\), "Start-LSN": "'"$lsn"'", "End-LSN": "'"$lsn"'" }'
  sed -n "s|$range.*|\\1 \\2 \\3|p" "$tmp/manifest" > "$tmp/ranges"
  if [ ! -s "$tmp/ranges" ]; then
    echo "WAL archive kept: the backup_manifest of $keep lists no WAL range"
    rm -rf "$tmp"; return 0
  fi
  set -- $(sort -n "$tmp/ranges" | head -n 1)
  timeline="$1" start="$2"
  set -- $(sort -n "$tmp/ranges" | tail -n 1)
  end="$3"
  set -- $(cutoff_of "$timeline" "$start")
  cutoff="$1" history="$2"
  cut=$(segment_number "$cutoff")
  list_wal > "$tmp/listing"
  # The database the backup is of: the directory whose history file of this start says the
  # same start and end (the manifest names no system identifier).
  system=""
  pattern="$(printf '%s' "$history" | sed 's/[.]/[.]/g')"
  for candidate in $(sed -n "s|^\\([0-9][0-9]*\\)/$pattern .*|\\1|p" "$tmp/listing"); do
    fetch "$wal/$candidate/$history" "$tmp/history" || continue
    if grep -qx "START WAL LOCATION: $start (file $cutoff)" "$tmp/history" &&
      grep -q "^STOP WAL LOCATION: $end " "$tmp/history" &&
      grep -qx "START TIMELINE: $timeline" "$tmp/history"; then
      if [ -n "$system" ]; then
        echo "WAL archive kept: both $system and $candidate hold the history file of $keep" \\
          "($history), so which database it is of is unknown"
        rm -rf "$tmp"; return 0
      fi
      system="$candidate"
    fi
  done
  if [ -z "$system" ]; then
    echo "WAL archive kept: no history file of $keep ($history, timeline $timeline from" \\
      "$start to $end) in $wal/, so which database it is of is unknown"
    rm -rf "$tmp"; return 0
  fi
  : > "$tmp/doomed"
  while read -r path bytes; do
    case "$path" in "$system"/*) ;; *) continue ;; esac
    name="${path#*/}"
    case "$name" in
      """
    + f'{_SEG}) [ "$bytes" = "$size" ] || {{ echo "$name is $bytes bytes" > "$tmp/odd"; break; }}'
    + " ;;\n"
    + f"      {_SEG}.partial|{_SEG}.{_OFFSET}.backup) ;;\n"
    + """      *) continue ;;
    esac
    [ $(( 0x${name%"${name#????????}"} )) -le "$timeline" ] || continue
    [ "$(segment_number "$name")" -lt "$cut" ] || continue
    echo "$name" >> "$tmp/doomed"
  done < "$tmp/listing"
  if [ -e "$tmp/odd" ]; then
    echo "WAL archive kept: $(cat "$tmp/odd") in $wal/$system/, not a WAL segment of" \\
      "$size bytes, so where $keep begins cannot be told in it"
    rm -rf "$tmp"; return 0
  fi
  count=$(wc -l < "$tmp/doomed")
  if [ "$count" -eq 0 ]; then
    echo "no archived WAL before $cutoff, where $keep begins: nothing to prune"
    rm -rf "$tmp"; return 0
  fi
  while read -r name; do
    wal_file "$wal/$system/$name" || {
      echo "refusing to delete '$wal/$system/$name': not a WAL file of the archive" >&2
      exit 1
    }
  done < "$tmp/doomed"
  remove "$system" < "$tmp/doomed"
  rm -rf "$tmp"
  echo "pruned $count archived WAL files of $wal/$system/ before $cutoff, where $keep begins"
}
"""
)

# A claim, as the cleanup step mounts it at `$BACKUP_ROOT`: files, reached without symbolic
# links (a link planted on the shared claim could point anywhere the pod can write).
PVC_PRUNE_SCRIPT: Final = (
    """
fetch() { cat -- "$root/$1" > "$2"; }
list_wal() {
  [ -d "$root/$wal" ] || return 0
  for file in "$root/$wal"/*/*; do
    [ -f "$file" ] && [ ! -L "$file" ] || continue
    printf '%s %s\\n' "${file#"$root/$wal"/}" "$(wc -c < "$file")"
  done
}
remove() {
  dir="$root/$wal/$1"
  if [ "$(cd -P -- "$dir" && pwd -P)" != "$dir" ]; then
    echo "refusing to prune $wal/$1: reached through a symbolic link" >&2; exit 1
  fi
  while read -r name; do
    if [ -L "$dir/$name" ] || [ ! -f "$dir/$name" ]; then
      echo "refusing to delete $wal/$1/$name: not a file" >&2; exit 1
    fi
    rm -f -- "$dir/$name"
  done
}
root="$(cd -P -- "$BACKUP_ROOT" && pwd -P)"
"""
    + PRUNE_FUNCTIONS
    + "prune_wal\n"
)

# A bucket, with the AWS CLI (endpoint, region and keys from the environment): the listing
# from list-objects-v2 (which the CLI pages through), deletions by delete-objects, 1000 keys a
# request, whose per-key errors fail the step (the CLI itself exits 0 on them).
S3_PRUNE_SCRIPT: Final = (
    """
fetch() { aws s3 cp --only-show-errors "s3://$BUCKET/$1" "$2"; }
list_wal() {
  aws s3api list-objects-v2 --bucket "$BUCKET" --prefix "$wal/" \\
    --query 'Contents[].[Key,Size]' --output text > "$tmp/objects"
  while read -r key bytes; do
    case "$key" in "$wal"/*) printf '%s %s\\n' "${key#"$wal"/}" "$bytes" ;; esac
  done < "$tmp/objects"
}
delete_batch() {
  printf ']}' >> "$tmp/delete.json"
  errors="$(aws s3api delete-objects --bucket "$BUCKET" --delete "file://$tmp/delete.json" \\
    --query 'Errors[].[Key,Message]' --output text)"
  case "$errors" in
    ''|None) ;;
    *) echo "could not delete: $errors" >&2; exit 1 ;;
  esac
}
remove() {
  batch=0
  while read -r name; do
    if [ "$batch" -eq 0 ]; then
      printf '{"Quiet":true,"Objects":[' > "$tmp/delete.json"
    else
      printf ',' >> "$tmp/delete.json"
    fi
    printf '{"Key":"%s"}' "$wal/$1/$name" >> "$tmp/delete.json"
    batch=$((batch + 1))
    if [ "$batch" -eq 1000 ]; then delete_batch; batch=0; fi
  done
  if [ "$batch" -gt 0 ]; then delete_batch; fi
}
"""
    + PRUNE_FUNCTIONS
    + "prune_wal\n"
)
