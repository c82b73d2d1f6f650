#! /usr/bin/env bash
# shellcheck disable=SC1091
# sbin/clear-all.sh of a mldb-upgrade sandbox release: the stand-in of OpenMLDB's
# release/sbin/clear-all.sh (reference O§2.5), written anew with the same behaviour.
#
# Deletes data and logs through run_auto, for every conf/hosts entry. With
# CLEAR_OPENMLDB_INSTALL_DIR=true it deletes each entry's whole WORKDIR instead (for an entry
# without a WORKDIR that is the release directory itself). Otherwise: for a tablet, each
# directory named in conf/tablet.flags.template (the values of its uncommented *root_path keys
# but zk_root_path, and of openmldb_log_dir), relative to the WORKDIR; for a nameserver or an
# apiserver, WORKDIR/logs; for a taskmanager, WORKDIR/logs and WORKDIR/taskmanager/bin/logs.
# Every taskmanager host also loses /tmp/openmldb_offline_storage/. Unless
# OPENMLDB_USE_EXISTING_ZK_CLUSTER=true, each ZooKeeper WORKDIR loses zookeeper.out and the
# directories under its data/. In standalone mode it deletes standalone_db and standalone_logs
# of the release.
#
# Differences from the real script: the real one runs `cd WORKDIR/data; find -type d ... -exec
# rm -rf` for ZooKeeper, so when WORKDIR/data is missing it deletes every directory of the
# directory the command started in (the release directory here, the home directory over ssh).
# The stand-in joins the two with `&&`: a missing data/ deletes nothing.

release_root=$(cd "$(dirname "$0")/.." || exit 1; pwd)
sbin_dir=$(cd "$(dirname "$0")" || exit 1; pwd)
. "$release_root/conf/openmldb-env.sh"
. "$sbin_dir/init.sh"
cd "$release_root" || exit 1

# remove_workdir HOST DIR: rm -rf DIR on HOST; an empty DIR ends the script.
remove_workdir() {
  if [[ -z "$2" ]]; then
    echo "empty dir"
    exit 1
  fi
  run_auto "$1" "rm -rf \"$2\""
}

if [[ "${OPENMLDB_MODE}" == standalone ]]; then
  rm -rf standalone_db standalone_logs
  exit
fi

tablet_dirs=()
while IFS= read -r setting
do
  [[ "$setting" != \#* ]] || continue
  if [[ ( "$setting" == *root_path* && "$setting" != *zk_root_path* ) || "$setting" == *openmldb_log_dir* ]]; then
    tablet_dirs+=("$(awk -F '=' '{print $2}' <<< "$setting")")
  fi
done < conf/tablet.flags.template

saved_ifs=$IFS
IFS=$'\n'

for entry in $(parse_host conf/hosts tablet)
do
  host=$(awk '{print $1}' <<< "$entry")
  port=$(awk '{print $2}' <<< "$entry")
  dir=$(awk '{print $3}' <<< "$entry")
  if [[ "${CLEAR_OPENMLDB_INSTALL_DIR}" == true ]]; then
    echo "clear $dir with endpoint $host:$port "
    remove_workdir "$host" "$dir"
  else
    echo "clear tablet data and log in $dir with endpoint $host:$port "
    for item in "${tablet_dirs[@]}"
    do
      echo "clear $item with endpoint $host:$port "
      run_auto "$host" "cd $dir && rm -rf \"$item\""
    done
  fi
done

for role in apiserver nameserver
do
  for entry in $(parse_host conf/hosts "$role")
  do
    host=$(awk '{print $1}' <<< "$entry")
    port=$(awk '{print $2}' <<< "$entry")
    dir=$(awk '{print $3}' <<< "$entry")
    if [[ "${CLEAR_OPENMLDB_INSTALL_DIR}" == true ]]; then
      echo "clear $dir with endpoint $host:$port "
      remove_workdir "$host" "$dir"
    else
      echo "clear $role log in $dir with endpoint $host:$port "
      run_auto "$host" "cd $dir && rm -rf logs"
    fi
  done
done

for entry in $(parse_host conf/hosts taskmanager)
do
  host=$(awk '{print $1}' <<< "$entry")
  port=$(awk '{print $2}' <<< "$entry")
  dir=$(awk '{print $3}' <<< "$entry")
  if [[ "${CLEAR_OPENMLDB_INSTALL_DIR}" == true ]]; then
    echo "clear $dir with endpoint $host:$port "
    remove_workdir "$host" "$dir"
  else
    echo "clear taskmanager log in $dir with endpoint $host:$port "
    run_auto "$host" "cd $dir && rm -rf logs taskmanager/bin/logs"
  fi
  echo "clear taskmanager data in $dir with endpoint $host:$port "
  run_auto "$host" "rm -rf /tmp/openmldb_offline_storage/"
done

if [[ "${OPENMLDB_USE_EXISTING_ZK_CLUSTER}" != true ]]; then
  for entry in $(parse_host conf/hosts zookeeper)
  do
    host=$(awk '{print $1}' <<< "$entry")
    port=$(awk '{print $2}' <<< "$entry")
    dir=$(awk '{print $3}' <<< "$entry")
    if [[ "${CLEAR_OPENMLDB_INSTALL_DIR}" == true ]]; then
      echo "clear $dir with endpoint $host:$port "
      remove_workdir "$host" "$dir"
    else
      echo "clear zookeeper data and log in $dir with endpoint $host:$port"
      run_auto "$host" "cd $dir && rm zookeeper.out > /dev/null 2>&1"
      run_auto "$host" "cd $dir/data && find -type d -not -path '.' -exec rm -rf {} +"
    fi
  done
fi

IFS=$saved_ifs
