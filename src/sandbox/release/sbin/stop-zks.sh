#! /usr/bin/env bash
# shellcheck disable=SC1091
# sbin/stop-zks.sh of a mldb-upgrade sandbox release: the stand-in of OpenMLDB's
# release/sbin/stop-zks.sh (reference O§2.5), written anew with the same behaviour.
#
# For every [zookeeper] entry of conf/hosts, in order, through run_auto: `bin/zkServer.sh stop`
# in its WORKDIR, or "<WORKDIR> is not exist" when that directory is missing. It does not look at
# OPENMLDB_USE_EXISTING_ZK_CLUSTER: stop-all.sh skips it when that is true. Arguments are ignored.
#
# No differences from the real script.

set -e

release_root=$(cd "$(dirname "$0")/.." || exit 1; pwd)
sbin_dir=$(cd "$(dirname "$0")" || exit 1; pwd)
. "$release_root/conf/openmldb-env.sh"
. "$sbin_dir/init.sh"
cd "$release_root" || exit 1

saved_ifs=$IFS
IFS=$'\n'
for entry in $(parse_host conf/hosts zookeeper)
do
  host=$(awk '{print $1}' <<< "$entry")
  port=$(awk '{print $2}' <<< "$entry")
  dir=$(awk '{print $3}' <<< "$entry")
  echo "stop zookeeper in $dir with endpoint $host:$port "
  run_auto "$host" "if [[ -d $dir ]]; then cd $dir && bin/zkServer.sh stop ; else echo $dir is not exist; fi"
done
IFS=$saved_ifs
