#! /usr/bin/env bash
# sbin/deploy.sh of a mldb-upgrade sandbox release: the stand-in of OpenMLDB's
# release/sbin/deploy.sh (reference O§2.4), written anew with the same behaviour. deploy-all.sh
# runs it in a component's WORKDIR as `sbin/deploy.sh <role>` with OPENMLDB_HOST, the role's
# port variable, OPENMLDB_ZK_CLUSTER and OPENMLDB_ZK_ROOT_PATH in its environment (SPARK_HOME too
# for a taskmanager).
#
# It regenerates conf/<role>.flags (conf/taskmanager.properties) from its .template every time:
# a header line naming the template and a blank line, the template, a blank line,
# "# below configs are generated automatically", then for each key it sets, `exchange`: every
# line starting with the key (a sed pattern, so `.` matches any character and the key is only
# a prefix) is commented out with "# " and key=value is appended. The keys: the ZooKeeper
# address (zookeeper.cluster/zookeeper.root_path when the file mentions them, else
# --zk_cluster/--zk_root_path; each only when its variable is set), then --endpoint=host:port,
# or for the taskmanager server.host, server.port and spark.home=$SPARK_HOME.
# `deploy.sh zookeeper` writes conf/zoo.cfg from conf/zoo_sample.cfg in a ZooKeeper home
# (clientPort, dataDir, initLimit=5, syncLimit=2, maxClientCnxns=120, the server.N lines of
# OPENMLDB_ZK_QUORUM, data/myid). An unknown role prints the supported ones and exits 0.
#
# No differences from the real script.

exchange() {
  local key=$1
  local value=$2
  local target=$3
  sed -i -e "s/^${key}/# ${key}/" "$target"
  printf '%s=%s\n' "$key" "$value" >> "$target"
}

set_zk_keys() {
  local target=$1
  if [[ -n "${OPENMLDB_ZK_CLUSTER}" ]]; then
    if grep -q 'zookeeper.cluster' "$target"; then
      exchange zookeeper.cluster "${OPENMLDB_ZK_CLUSTER}" "$target"
    else
      exchange --zk_cluster "${OPENMLDB_ZK_CLUSTER}" "$target"
    fi
  fi
  if [[ -n "${OPENMLDB_ZK_ROOT_PATH}" ]]; then
    if grep -q 'zookeeper.root_path' "$target"; then
      exchange zookeeper.root_path "${OPENMLDB_ZK_ROOT_PATH}" "$target"
    else
      exchange --zk_root_path "${OPENMLDB_ZK_ROOT_PATH}" "$target"
    fi
  fi
}

# generate_config FILE HOST PORT [TEMPLATE (default FILE.template)] [WITH_ZK (default true)]
generate_config() {
  local target=$1
  local host=$2
  local port=$3
  local template=${target}.template
  [[ $# -lt 4 ]] || template=$4
  local with_zk=true
  [[ $# -lt 5 ]] || with_zk=$5

  {
    printf '# This file is generated automatically from %s\n\n' "$template"
    cat "$template"
    printf '\n# below configs are generated automatically\n'
  } > "$target"

  if [[ -n "$with_zk" && "$with_zk" != false ]]; then
    set_zk_keys "$target"
  fi

  [[ -n "$port" ]] || return 0
  if grep -q -e '--endpoint=' "$target"; then
    exchange --endpoint "$host:$port" "$target"
  elif grep -q 'server.host' "$target"; then
    exchange server.host "$host" "$target"
    exchange server.port "$port" "$target"
    exchange spark.home "${SPARK_HOME}" "$target"
  elif grep -q 'clientPort' "$target"; then
    exchange clientPort "$port" "$zk_conf"
  fi
}

case "$1" in
  tablet)
    generate_config conf/tablet.flags "${OPENMLDB_HOST}" "${OPENMLDB_TABLET_PORT}"
    ;;
  nameserver)
    generate_config conf/nameserver.flags "${OPENMLDB_HOST}" "${OPENMLDB_NAMESERVER_PORT}"
    ;;
  apiserver)
    generate_config conf/apiserver.flags "${OPENMLDB_HOST}" "${OPENMLDB_APISERVER_PORT}"
    ;;
  taskmanager)
    generate_config conf/taskmanager.properties "${OPENMLDB_HOST}" "${OPENMLDB_TASKMANAGER_PORT}"
    ;;
  zookeeper)
    zk_conf=conf/zoo.cfg
    generate_config "$zk_conf" "${OPENMLDB_HOST}" "${OPENMLDB_ZK_CLUSTER_CLIENT_PORT}" conf/zoo_sample.cfg false
    zk_data=${OPENMLDB_ZK_HOME}/data
    exchange dataDir "$zk_data" "$zk_conf"
    printf '%s\n' initLimit=5 syncLimit=2 maxClientCnxns=120 >> "$zk_conf"
    tr '|' '\n' <<< "$OPENMLDB_ZK_QUORUM" >> "$zk_conf"
    [[ -e "$zk_data" ]] || mkdir -p "$zk_data"
    echo "$OPENMLDB_ZK_MYID" > "$zk_data/myid"
    ;;
  *)
    echo "Only support {tablet|nameserver|apiserver|taskmanager|zookeeper}" >&2
    ;;
esac
