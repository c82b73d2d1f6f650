#! /usr/bin/env bash
# shellcheck disable=SC1091
# sbin/stop-all.sh of a mldb-upgrade sandbox release: the stand-in of OpenMLDB's
# release/sbin/stop-all.sh (reference O§2.5), written anew with the same behaviour.
#
# Runs, without arguments: stop-apiservers.sh, in cluster mode stop-taskmanagers.sh,
# stop-nameservers.sh, stop-tablets.sh, and in cluster mode, unless
# OPENMLDB_USE_EXISTING_ZK_CLUSTER=true, a 10 s pause and stop-zks.sh; then "OpenMLDB stopped".
# Under `set -e`: the first failing step ends it.
#
# Differences from the real script: none, except that the sandbox's SANDBOX_SLEEP_SCALE scales
# the pause (see init.sh).

set -e

release_root=$(cd "$(dirname "$0")/.." || exit 1; pwd)
sbin_dir=$(cd "$(dirname "$0")" || exit 1; pwd)
. "$release_root/conf/openmldb-env.sh"
. "$sbin_dir/init.sh"
cd "$release_root" || exit 1

"$sbin_dir/stop-apiservers.sh"

if [[ "${OPENMLDB_MODE}" == cluster ]]; then
  "$sbin_dir/stop-taskmanagers.sh"
fi

"$sbin_dir/stop-nameservers.sh"

"$sbin_dir/stop-tablets.sh"

if [[ "${OPENMLDB_MODE}" == cluster && "${OPENMLDB_USE_EXISTING_ZK_CLUSTER}" != true ]]; then
  sandbox_sleep 10
  "$sbin_dir/stop-zks.sh"
fi

echo "OpenMLDB stopped"
