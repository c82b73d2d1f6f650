#! /usr/bin/env bash
# shellcheck disable=SC1091
# sbin/start-zks.sh of a mldb-upgrade sandbox release: the stand-in of OpenMLDB's
# release/sbin/start-zks.sh (reference O§2.5), written anew with the same behaviour.
#
# For every [zookeeper] entry of conf/hosts, in order, through run_auto:
# `cd WORKDIR && bin/zkServer.sh start WORKDIR/conf/zoo.cfg` (a ZooKeeper home laid out by
# deploy-all.sh), with the same RUNNER_JAVA_HOME prefix as start-taskmanagers.sh. It does not
# look at OPENMLDB_USE_EXISTING_ZK_CLUSTER: start-all.sh skips it when that is true. Arguments
# are ignored.
#
# No differences from the real script. The sandbox ships no ZooKeeper: the ZooKeeper home is
# whatever deploy-all.sh made from $OPENMLDB_ZK_HOME or zookeeper-3.4.14.tar.gz.

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
  echo "start zookeeper in $dir with endpoint $host:$port "
  java_env=
  if [[ -n "$RUNNER_JAVA_HOME" ]]; then
    echo "overwrite java env by RUNNER_JAVA_HOME:$RUNNER_JAVA_HOME"
    java_env="export JAVA_HOME=$RUNNER_JAVA_HOME && export PATH=$JAVA_HOME/bin:$PATH &&"
  fi
  run_auto "$host" "$java_env cd $dir && bin/zkServer.sh start $dir/conf/zoo.cfg"
done
IFS=$saved_ifs
