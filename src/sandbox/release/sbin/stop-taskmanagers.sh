#! /usr/bin/env bash
# shellcheck disable=SC1091
# sbin/stop-taskmanagers.sh of a mldb-upgrade sandbox release: the stand-in of OpenMLDB's
# release/sbin/stop-taskmanagers.sh (reference O§2.5), written anew with the same behaviour.
#
# For every [taskmanager] entry of conf/hosts, in order, through run_auto:
# `bin/start.sh stop taskmanager` in its WORKDIR, or "<WORKDIR> is not exist" when that directory
# is missing; a 2 s pause after each entry. Arguments are ignored. In standalone mode it prints
# that there is no taskmanager to stop and then fails with status 127, as the real one does (it
# calls `pass`, which is not a bash command).
#
# Differences from the real script: none, except that the sandbox's SANDBOX_SLEEP_SCALE scales
# the pauses (see init.sh).

set -e

release_root=$(cd "$(dirname "$0")/.." || exit 1; pwd)
sbin_dir=$(cd "$(dirname "$0")" || exit 1; pwd)
. "$release_root/conf/openmldb-env.sh"
. "$sbin_dir/init.sh"
cd "$release_root" || exit 1

if [[ "${OPENMLDB_MODE}" == standalone ]]; then
  echo "No taskmanager instance to stop in Standalone Mode"
  echo "$0: pass: command not found" >&2
  exit 127
else
  saved_ifs=$IFS
  IFS=$'\n'
  for entry in $(parse_host conf/hosts taskmanager)
  do
    host=$(awk '{print $1}' <<< "$entry")
    port=$(awk '{print $2}' <<< "$entry")
    dir=$(awk '{print $3}' <<< "$entry")
    echo "stop taskmanager in $dir with endpoint $host:$port "
    run_auto "$host" "if [[ -d $dir ]]; then cd $dir && bin/start.sh stop taskmanager; else echo $dir is not exist; fi"
    sandbox_sleep 2
  done
  IFS=$saved_ifs
fi
