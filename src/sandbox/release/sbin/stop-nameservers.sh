#! /usr/bin/env bash
# shellcheck disable=SC1091
# sbin/stop-nameservers.sh of a mldb-upgrade sandbox release: the stand-in of OpenMLDB's
# release/sbin/stop-nameservers.sh (reference O§2.5), written anew with the same behaviour.
#
# For every [nameserver] entry of conf/hosts, in order, through run_auto: `bin/start.sh stop
# nameserver` in its WORKDIR, or "<WORKDIR> is not exist" when that directory is missing; a 2 s
# pause after each entry. Arguments are ignored. In standalone mode it runs `bin/start.sh stop
# standalone_nameserver` in the release instead.
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
  bin/start.sh stop standalone_nameserver
else
  saved_ifs=$IFS
  IFS=$'\n'
  for entry in $(parse_host conf/hosts nameserver)
  do
    host=$(awk '{print $1}' <<< "$entry")
    port=$(awk '{print $2}' <<< "$entry")
    dir=$(awk '{print $3}' <<< "$entry")
    echo "stop nameserver in $dir with endpoint $host:$port "
    run_auto "$host" "if [[ -d $dir ]]; then cd $dir && bin/start.sh stop nameserver; else echo $dir is not exist; fi"
    sandbox_sleep 2
  done
  IFS=$saved_ifs
fi
