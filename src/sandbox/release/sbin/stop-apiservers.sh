#! /usr/bin/env bash
# shellcheck disable=SC1091
# sbin/stop-apiservers.sh of a mldb-upgrade sandbox release: the stand-in of OpenMLDB's
# release/sbin/stop-apiservers.sh (reference O§2.5), written anew with the same behaviour.
#
# For every [apiserver] entry of conf/hosts, in order, through run_auto: `bin/start.sh stop
# apiserver` in its WORKDIR, or "<WORKDIR> is not exist" when that directory is missing; no
# pause between entries (the tablet, nameserver and taskmanager scripts pause 2 s). Arguments
# are ignored. In standalone mode it runs `bin/start.sh stop standalone_apiserver` in the
# release instead.
#
# No differences from the real script.

set -e

release_root=$(cd "$(dirname "$0")/.." || exit 1; pwd)
sbin_dir=$(cd "$(dirname "$0")" || exit 1; pwd)
. "$release_root/conf/openmldb-env.sh"
. "$sbin_dir/init.sh"
cd "$release_root" || exit 1

if [[ "${OPENMLDB_MODE}" == standalone ]]; then
  bin/start.sh stop standalone_apiserver
else
  saved_ifs=$IFS
  IFS=$'\n'
  for entry in $(parse_host conf/hosts apiserver)
  do
    host=$(awk '{print $1}' <<< "$entry")
    port=$(awk '{print $2}' <<< "$entry")
    dir=$(awk '{print $3}' <<< "$entry")
    echo "stop apiserver in $dir with endpoint $host:$port "
    run_auto "$host" "if [[ -d $dir ]]; then cd $dir && bin/start.sh stop apiserver; else echo $dir is not exist; fi"
  done
  IFS=$saved_ifs
fi
