#!/usr/bin/env bash
# hdfs: a STAND-IN for Hadoop's `hdfs` command line, for sandboxes and tests only.
#
# `mldb-upgrade sandbox up --spark-master yarn` writes it to <sandbox>/hdfs/bin/hdfs. A sandbox
# has no Hadoop and no network, so "HDFS" is a local directory: <sandbox>/hdfs/root (the
# environment variable HDFS_STUB_ROOT overrides it). It implements the `hdfs dfs` subcommands
# mldb-upgrade's YARN steps use, with the real CLI's output shapes, messages and exit codes:
#
#   hdfs dfs -ls PATH...               a directory: "Found N items", then one line per entry;
#                                      a file: its line. A line is
#                                      "perms replication owner group size yyyy-mm-dd HH:MM path"
#                                      (replication "-" for a directory), the path spelled as
#                                      given. Missing: "ls: `PATH': No such file or directory", 1.
#   hdfs dfs -put [-f] SRC... DST      local files into DST (a directory: under their names);
#                                      written as DST._COPYING_ then renamed, as HDFS does; an
#                                      existing file without -f: "put: `DST': File exists", 1;
#                                      a missing parent directory: "No such file or directory", 1.
#   hdfs dfs -mkdir [-p] PATH...       without -p an existing path or a missing parent fails.
#   hdfs dfs -rm [-f] [-r|-R] [-skipTrash] PATH...
#                                      prints "Deleted PATH"; missing without -f, or a directory
#                                      without -r, fails.
#
# Paths: hdfs://<authority>/p, hdfs:///p and /p all name <root>/p (one namespace: the authority
# is not looked at); a relative path is under /user/$USER, as in HDFS; another scheme fails
# ("No FileSystem for scheme"). Anything else (another subcommand, `hdfs` without `dfs`) fails
# with a usage message, exit 255 as the real CLI's -1. Every call is appended to
# <sandbox>/hdfs/calls.log, so a rehearsal (or a test) can see what was run.

set -u
here=$(cd "$(dirname "$0")/.." && pwd)
root=${HDFS_STUB_ROOT:-$here/root}
printf '%s hdfs %s\n' "$(date '+%F %T')" "$*" >> "$here/calls.log"

usage() {
    echo "Usage: hdfs dfs [-ls <path> ...] [-put [-f] <localsrc> ... <dst>] [-mkdir [-p] <path> ...] [-rm [-f] [-r|-R] [-skipTrash] <src> ...]" >&2
    echo "(a stand-in of the HDFS command line for mldb-upgrade sandboxes: $0)" >&2
    exit 255
}

# The local path of an HDFS path, in $local; 1 (with the message) for another scheme.
resolve() {
    local p=$1 rest
    case $p in
        hdfs://*)
            rest=${p#hdfs://}
            case $rest in
                */*) p=/${rest#*/} ;;
                *) p=/ ;;
            esac
            ;;
        /*) ;;
        *://* | *:/*)
            echo "$cmd: No FileSystem for scheme \"${p%%:*}\"" >&2
            return 1
            ;;
        *) p=/user/${USER:-$(id -un)}/$p ;;
    esac
    local=$root$p
}

line() { # local path, shown path
    local kind=- perms=rw-r--r-- replication=1 size mtime
    if [ -d "$1" ]; then kind=d perms=rwxr-xr-x replication=-; fi
    size=$(stat -c %s "$1")
    [ -d "$1" ] && size=0
    mtime=$(date -d "@$(stat -c %Y "$1")" '+%Y-%m-%d %H:%M')
    printf '%s%s %3s %s %s %10s %s %s\n' "$kind" "$perms" "$replication" "$(id -un)" supergroup "$size" "$mtime" "$2"
}

[ "${1:-}" = dfs ] || usage
shift
cmd=${1:-}
cmd=${cmd#-}
[ -n "$cmd" ] || usage
shift
status=0
case $cmd in
    ls)
        [ $# -gt 0 ] || set -- .
        for p in "$@"; do
            resolve "$p" || { status=1; continue; }
            if [ -d "$local" ]; then
                names=$(ls -A "$local")
                count=$(printf '%s' "$names" | grep -c '^' || true)
                [ "$count" -gt 0 ] && echo "Found $count items"
                while IFS= read -r name; do
                    [ -n "$name" ] && line "$local/$name" "${p%/}/$name"
                done <<< "$names"
            elif [ -e "$local" ]; then
                line "$local" "$p"
            else
                echo "ls: \`$p': No such file or directory" >&2
                status=1
            fi
        done
        ;;
    put | copyFromLocal)
        force=false
        while [ $# -gt 0 ]; do
            case $1 in
                -f) force=true ;;
                -p | -d | -l) ;;
                -*) echo "-$cmd: Illegal option $1" >&2; usage ;;
                *) break ;;
            esac
            shift
        done
        [ $# -ge 2 ] || { echo "-$cmd: Not enough arguments: expected 1 but got 0" >&2; usage; }
        dst=${!#}
        resolve "$dst" || exit 1
        dst_local=$local
        if [ $# -gt 2 ] && [ ! -d "$dst_local" ]; then
            echo "put: \`$dst': No such file or directory" >&2
            exit 1
        fi
        while [ $# -gt 1 ]; do
            src=$1
            shift
            if [ ! -f "$src" ]; then
                echo "put: \`$src': No such file or directory" >&2
                status=1
                continue
            fi
            target=$dst_local shown=$dst
            if [ -d "$dst_local" ]; then target=$dst_local/$(basename "$src") shown=${dst%/}/$(basename "$src"); fi
            if [ ! -d "$(dirname "$target")" ]; then
                echo "put: \`$shown': No such file or directory" >&2
                status=1
                continue
            fi
            if [ -e "$target" ] && ! $force; then
                echo "put: \`$shown': File exists" >&2
                status=1
                continue
            fi
            cp "$src" "$target._COPYING_" && mv -f "$target._COPYING_" "$target" || status=1
        done
        ;;
    mkdir)
        parents=false
        if [ "${1:-}" = -p ]; then parents=true; shift; fi
        [ $# -gt 0 ] || usage
        for p in "$@"; do
            resolve "$p" || { status=1; continue; }
            if $parents; then
                mkdir -p "$local" || status=1
            elif [ -e "$local" ]; then
                echo "mkdir: \`$p': File exists" >&2
                status=1
            elif [ ! -d "$(dirname "$local")" ]; then
                echo "mkdir: \`$p': No such file or directory" >&2
                status=1
            else
                mkdir "$local" || status=1
            fi
        done
        ;;
    rm)
        force=false recursive=false
        while [ $# -gt 0 ]; do
            case $1 in
                -f) force=true ;;
                -r | -R) recursive=true ;;
                -skipTrash) ;;
                -*) echo "-rm: Illegal option $1" >&2; usage ;;
                *) break ;;
            esac
            shift
        done
        [ $# -gt 0 ] || usage
        for p in "$@"; do
            resolve "$p" || { status=1; continue; }
            if [ ! -e "$local" ]; then
                $force || { echo "rm: \`$p': No such file or directory" >&2; status=1; }
            elif [ -d "$local" ] && ! $recursive; then
                echo "rm: \`$p': Is a directory" >&2
                status=1
            else
                rm -rf "$local" && echo "Deleted $p" || status=1
            fi
        done
        ;;
    *)
        echo "-$cmd: Unknown command" >&2
        usage
        ;;
esac
exit $status
