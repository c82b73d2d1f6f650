#! /usr/bin/env bash
# shellcheck disable=SC1091
# sbin/start-all.sh of a mldb-upgrade sandbox release: the stand-in of OpenMLDB's
# release/sbin/start-all.sh (reference O§2.5), written anew with the same behaviour.
#
# Prints the OPENMLDB_* and SPARK_HOME environment, then, passing its arguments (e.g. `mon`) to
# each: start-zks.sh and a 5 s pause (cluster mode, unless OPENMLDB_USE_EXISTING_ZK_CLUSTER=true),
# start-tablets.sh, start-nameservers.sh, in cluster mode
# `python3 tools/openmldb_ops.py --cmd=recoverdata ...` with its output in logs/recover.log,
# start-apiservers.sh, in cluster mode start-taskmanagers.sh, and "OpenMLDB start success".
# No `set -e`: a failing step does not stop the next ones, and it always ends with success.
#
# Differences from the real script: none, except that the sandbox's SANDBOX_SLEEP_SCALE scales
# the pause (see init.sh). The sandbox release ships no tools/openmldb_ops.py, so the recoverdata
# step reports "Recovering data failed" unless one is put there.

release_root=$(cd "$(dirname "$0")/.." || exit 1; pwd)
sbin_dir=$(cd "$(dirname "$0")" || exit 1; pwd)
. "$release_root/conf/openmldb-env.sh"
. "$sbin_dir/init.sh"
cd "$release_root" || exit 1

echo "OPENMLDB envs:"
printenv | grep OPENMLDB_
printenv | grep SPARK_HOME
echo ""

if [[ "${OPENMLDB_MODE}" == cluster && "${OPENMLDB_USE_EXISTING_ZK_CLUSTER}" != true ]]; then
  "$sbin_dir/start-zks.sh" "$@"
  sandbox_sleep 5
fi

"$sbin_dir/start-tablets.sh" "$@"

"$sbin_dir/start-nameservers.sh" "$@"

if [[ "${OPENMLDB_MODE}" == cluster ]]; then
  echo "Start recovering data..."
  mkdir -p logs > /dev/null 2>&1
  if python3 tools/openmldb_ops.py --openmldb_bin_path=./bin/openmldb --zk_cluster="${OPENMLDB_ZK_CLUSTER}" \
      --zk_root_path="${OPENMLDB_ZK_ROOT_PATH}" --cmd=recoverdata > logs/recover.log 2>&1; then
    echo "Recovering data done"
  else
    echo "Recovering data failed. Pls check log in logs/recover.log"
  fi
fi

"$sbin_dir/start-apiservers.sh" "$@"

if [[ "${OPENMLDB_MODE}" == cluster ]]; then
  "$sbin_dir/start-taskmanagers.sh" "$@"
fi

echo "OpenMLDB start success"
