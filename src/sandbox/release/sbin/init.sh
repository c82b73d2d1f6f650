#! /usr/bin/env bash
# sbin/init.sh of a mldb-upgrade sandbox release: the stand-in of OpenMLDB's
# release/sbin/init.sh (reference O§2.1-2.3), written anew with the same behaviour. Every other
# sbin script sources it right after conf/openmldb-env.sh.
#
# It provides:
# - parse_host HOSTS_FILE ROLE: one line "host port dir peer_port election_port" for each entry
#   of section [ROLE] of a conf/hosts file. Lines whose first non-space character is `#` are
#   dropped, empty lines are skipped, the section header must equal "[ROLE]" exactly and any
#   other line starting with (spaces and) `[` ends the section. An entry is
#   `host[:port[:peer_port[:election_port]]] [WORKDIR]`, split on blanks and `:`. A missing port
#   is the role's OPENMLDB_*_PORT from openmldb-env.sh, missing [zookeeper] peer/election ports
#   are OPENMLDB_ZK_CLUSTER_PEER_PORT/OPENMLDB_ZK_CLUSTER_ELECTION_PORT, and a missing WORKDIR is
#   $OPENMLDB_HOME ($OPENMLDB_ZK_HOME for [zookeeper]).
# - run_auto HOST CMD: `bash -c CMD` here when OPENMLDB_FORCE_LOCAL=true or HOST is localhost or
#   127.0.0.1, else `ssh -n HOST CMD`. As in the real one, a failing local CMD ends a caller
#   running under `set -e`; otherwise its status is lost (run_auto then returns 0).
# - the defaults: OPENMLDB_HOME is the release root (the directory above sbin/);
#   RUNNER_EXISTING_SPARK_HOME, when set, replaces SPARK_HOME; otherwise an empty SPARK_HOME is
#   $OPENMLDB_HOME/spark; OPENMLDB_ZK_HOME is $OPENMLDB_HOME/zookeeper; in cluster mode, unless
#   OPENMLDB_USE_EXISTING_ZK_CLUSTER=true, an empty OPENMLDB_ZK_CLUSTER is host:port,... of the
#   [zookeeper] entries.
#
# Sandbox-only addition: sandbox_sleep SECONDS, the fixed sleeps of the sbin scripts, scaled by
# SANDBOX_SLEEP_SCALE (environment, else conf/sandbox.env) the way bin/start.sh scales its waits.
# Without either it sleeps SECONDS, as the real scripts do.

home=$(cd "$(dirname "$0")/.." || exit 1; pwd)

parse_host() {
  local hosts_file=$1
  local role=$2
  local in_section=false
  local new_section='^ *\['
  grep -v '^ *#' < "$hosts_file" | while IFS= read -r entry
  do
    [[ -z "$entry" ]] && continue
    if [[ "$entry" == "[$role]" ]]; then
      in_section=true
      continue
    fi
    if [[ "$entry" =~ $new_section ]]; then
      in_section=false
    fi
    [[ "$in_section" == true ]] || continue

    local address workdir host port peer election
    address=$(awk '{print $1}' <<< "$entry")
    workdir=$(awk '{print $2}' <<< "$entry")
    host=$(awk -F ':' '{print $1}' <<< "$address")
    port=$(awk -F ':' '{print $2}' <<< "$address")
    peer=$(awk -F ':' '{print $3}' <<< "$address")
    election=$(awk -F ':' '{print $4}' <<< "$address")

    if [[ -z "$port" ]]; then
      case "$role" in
        tablet) port=$OPENMLDB_TABLET_PORT ;;
        nameserver) port=$OPENMLDB_NAMESERVER_PORT ;;
        apiserver) port=$OPENMLDB_APISERVER_PORT ;;
        taskmanager) port=$OPENMLDB_TASKMANAGER_PORT ;;
        zookeeper) port=$OPENMLDB_ZK_CLUSTER_CLIENT_PORT ;;
      esac
    fi
    if [[ "$role" == zookeeper ]]; then
      [[ -n "$peer" ]] || peer=$OPENMLDB_ZK_CLUSTER_PEER_PORT
      [[ -n "$election" ]] || election=$OPENMLDB_ZK_CLUSTER_ELECTION_PORT
    fi
    if [[ -z "$workdir" ]]; then
      if [[ "$role" == zookeeper ]]; then
        workdir=$OPENMLDB_ZK_HOME
      else
        workdir=$OPENMLDB_HOME
      fi
    fi
    printf '%s %s %s %s %s\n' "$host" "$port" "$workdir" "$peer" "$election"
  done
  return 0
}

run_auto() {
  local target=$1
  local command=$2
  if [[ "$OPENMLDB_FORCE_LOCAL" == true || "$target" == localhost || "$target" == 127.0.0.1 ]]; then
    local was_in
    was_in=$(pwd)
    bash -c "$command"
    cd "$was_in" || return
  else
    ssh -n "$target" "$command"
  fi
}

sandbox_sleep() {
  local scale=${SANDBOX_SLEEP_SCALE:-}
  if [[ -z "$scale" && -f "$home/conf/sandbox.env" ]]; then
    scale=$(grep '^SANDBOX_SLEEP_SCALE=' "$home/conf/sandbox.env" | awk -F '=' '{print $2}')
  fi
  sleep "$(awk -v s="$1" -v f="${scale:-1}" 'BEGIN { printf "%.3f", s * f }')"
}

if [[ -z "${OPENMLDB_HOME}" ]]; then
  OPENMLDB_HOME=$(cd "$(dirname "$0")/.." || exit 1; pwd)
  export OPENMLDB_HOME
fi

if [[ -n "$RUNNER_EXISTING_SPARK_HOME" ]]; then
  echo "use existing spark $RUNNER_EXISTING_SPARK_HOME on runner, overwrite SPARK_HOME"
  export SPARK_HOME=$RUNNER_EXISTING_SPARK_HOME
elif [[ -z "${SPARK_HOME}" ]]; then
  export SPARK_HOME=$OPENMLDB_HOME/spark
fi

if [[ -z "${OPENMLDB_ZK_HOME}" ]]; then
  export OPENMLDB_ZK_HOME=$OPENMLDB_HOME/zookeeper
fi

if [[ "$OPENMLDB_MODE" == cluster && "$OPENMLDB_USE_EXISTING_ZK_CLUSTER" != true && -z "${OPENMLDB_ZK_CLUSTER}" ]]; then
  zk_servers=
  saved_ifs=$IFS
  IFS=$'\n'
  for zk_entry in $(parse_host "$home/conf/hosts" zookeeper)
  do
    zk_server="$(awk '{print $1}' <<< "$zk_entry"):$(awk '{print $2}' <<< "$zk_entry")"
    zk_servers=${zk_servers:+$zk_servers,}$zk_server
  done
  IFS=$saved_ifs
  export OPENMLDB_ZK_CLUSTER=$zk_servers
fi
