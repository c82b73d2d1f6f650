#! /usr/bin/env bash
# shellcheck disable=SC1091
# sbin/start-apiservers.sh of a mldb-upgrade sandbox release: the stand-in of OpenMLDB's
# release/sbin/start-apiservers.sh (reference O§2.5), written anew with the same behaviour.
#
# For every [apiserver] entry of conf/hosts, in order, through run_auto: `cd WORKDIR &&
# bin/start.sh start apiserver ARGS` (ARGS are this script's arguments, e.g. `mon`, put in as
# "$*" while IFS is a newline, as the real one does: a second argument lands on a line of its
# own). Under `set -e` a failing command (ssh, or `cd` into a missing WORKDIR) ends the script;
# bin/start.sh itself exits 0 even when a start fails. In standalone mode it runs `bin/start.sh
# start standalone_apiserver ARGS` in the release instead.
#
# No differences from the real script.

set -e

release_root=$(cd "$(dirname "$0")/.." || exit 1; pwd)
sbin_dir=$(cd "$(dirname "$0")" || exit 1; pwd)
. "$release_root/conf/openmldb-env.sh"
. "$sbin_dir/init.sh"
cd "$release_root" || exit 1

if [[ "${OPENMLDB_MODE}" == standalone ]]; then
  bin/start.sh start standalone_apiserver "$@"
else
  saved_ifs=$IFS
  IFS=$'\n'
  for entry in $(parse_host conf/hosts apiserver)
  do
    host=$(awk '{print $1}' <<< "$entry")
    port=$(awk '{print $2}' <<< "$entry")
    dir=$(awk '{print $3}' <<< "$entry")
    echo "start apiserver in $dir with endpoint $host:$port "
    run_auto "$host" "cd $dir && bin/start.sh start apiserver $*"
  done
  IFS=$saved_ifs
fi
