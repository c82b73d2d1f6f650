#! /usr/bin/env bash
# shellcheck disable=SC1091
# sbin/start-taskmanagers.sh of a mldb-upgrade sandbox release: the stand-in of OpenMLDB's
# release/sbin/start-taskmanagers.sh (reference O§2.5), written anew with the same behaviour.
#
# For every [taskmanager] entry of conf/hosts, in order, through run_auto:
# `cd WORKDIR && SPARK_HOME=<$SPARK_HOME here> bin/start.sh start taskmanager ARGS` (ARGS are this
# script's arguments, e.g. `mon`, put in as "$*" while IFS is a newline, as the real one does).
# With RUNNER_JAVA_HOME set, the command is prefixed with
# `export JAVA_HOME=$RUNNER_JAVA_HOME && export PATH=$JAVA_HOME/bin:$PATH &&`, expanded here, on
# the deploying host, before it is sent: PATH gets this host's $JAVA_HOME/bin and $PATH, as in
# the real script. Under `set -e` a failing command (ssh, or `cd` into a missing WORKDIR) ends
# the script. In standalone mode it prints that no taskmanager is needed and then fails with
# status 127, as the real one does (it calls `pass`, which is not a bash command).
#
# No differences from the real script.

set -e

release_root=$(cd "$(dirname "$0")/.." || exit 1; pwd)
sbin_dir=$(cd "$(dirname "$0")" || exit 1; pwd)
. "$release_root/conf/openmldb-env.sh"
. "$sbin_dir/init.sh"
cd "$release_root" || exit 1

if [[ "${OPENMLDB_MODE}" == standalone ]]; then
  echo "No need to start taskmanager in Standalone Mode"
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
    echo "start taskmanager in $dir with endpoint $host:$port "
    java_env=
    if [[ -n "$RUNNER_JAVA_HOME" ]]; then
      echo "overwrite java env by RUNNER_JAVA_HOME:$RUNNER_JAVA_HOME"
      java_env="export JAVA_HOME=$RUNNER_JAVA_HOME && export PATH=$JAVA_HOME/bin:$PATH &&"
    fi
    run_auto "$host" "$java_env cd $dir && SPARK_HOME=${SPARK_HOME} bin/start.sh start taskmanager $*"
  done
  IFS=$saved_ifs
fi
