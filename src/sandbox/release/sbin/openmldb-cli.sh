#! /usr/bin/env bash
# shellcheck disable=SC1091
# sbin/openmldb-cli.sh of a mldb-upgrade sandbox release: the stand-in of OpenMLDB's
# release/sbin/openmldb-cli.sh (reference O§2.5), written anew with the same behaviour.
#
# Prints "<mode> <zk cluster> <zk root path>", then runs the release's bin/openmldb as the SQL
# client with this script's arguments: in cluster mode
# `--zk_cluster=$OPENMLDB_ZK_CLUSTER --zk_root_path=$OPENMLDB_ZK_ROOT_PATH --role=sql_client`,
# otherwise `--host 127.0.0.1 --port 6527`.
#
# No differences from the real script; bin/openmldb is the simulator, whose SQL client knows
# only the few statements the sandbox needs.

release_root=$(cd "$(dirname "$0")/.." || exit 1; pwd)
sbin_dir=$(cd "$(dirname "$0")" || exit 1; pwd)
. "$release_root/conf/openmldb-env.sh"
. "$sbin_dir/init.sh"
cd "$release_root" || exit 1

echo "${OPENMLDB_MODE} ${OPENMLDB_ZK_CLUSTER} ${OPENMLDB_ZK_ROOT_PATH}"
if [[ "$OPENMLDB_MODE" == cluster ]]; then
  bin/openmldb --zk_cluster="${OPENMLDB_ZK_CLUSTER}" --zk_root_path="${OPENMLDB_ZK_ROOT_PATH}" --role=sql_client "$@"
else
  bin/openmldb --host 127.0.0.1 --port 6527 "$@"
fi
