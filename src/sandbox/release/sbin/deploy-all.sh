#! /usr/bin/env bash
# shellcheck disable=SC1091
# sbin/deploy-all.sh of a mldb-upgrade sandbox release: the stand-in of OpenMLDB's
# release/sbin/deploy-all.sh (reference O§2.4), written anew with the same behaviour.
#
# Cluster mode only (otherwise it exits 2). For every conf/hosts entry, in the order tablets,
# nameservers, apiservers, taskmanagers, zookeeper: copy the release to the entry's WORKDIR with
# `rsync -arz` (no --delete; bin sbin conf udf, or bin sbin conf taskmanager for a taskmanager,
# everything of $OPENMLDB_ZK_HOME plus sbin/deploy.sh for ZooKeeper), then run
# `cd WORKDIR && ... sbin/deploy.sh <role>` there through run_auto. Nothing is copied when the
# host is local and WORKDIR is the source itself ("skip rsync as dest=src"): an entry without a
# WORKDIR runs from the release directory. Over ssh a taskmanager host also gets $SPARK_HOME
# rsynced to the same path, unless RUNNER_EXISTING_SPARK_HOME is set. Before the first
# taskmanager, unless RUNNER_EXISTING_SPARK_HOME is set, a missing $SPARK_HOME is made from
# spark-3.2.1-bin-openmldbspark.tgz in the release directory: untarred there and symlinked as
# $SPARK_HOME (an existing $SPARK_HOME is left alone, so Spark is never upgraded). ZooKeeper is
# deployed only when OPENMLDB_USE_EXISTING_ZK_CLUSTER is not true, from $OPENMLDB_ZK_HOME, made
# from zookeeper-3.4.14.tar.gz in the release directory when missing.
#
# Differences from the real script: the sandbox has no network, so it downloads nothing. When
# spark-3.2.1-bin-openmldbspark.tgz (or zookeeper-3.4.14.tar.gz) would be downloaded, it says so
# and exits 1 instead of calling curl; what it deployed before that stays deployed.

release_root=$(cd "$(dirname "$0")/.." || exit 1; pwd)
sbin_dir=$(cd "$(dirname "$0")" || exit 1; pwd)
. "$release_root/conf/openmldb-env.sh"
. "$sbin_dir/init.sh"
cd "$release_root" || exit 1

field() {
  awk -v n="$1" '{print $n}' <<< "$2"
}

# distribute HOST DEST [SRC (default: the release)] [KIND: openmldb (default)|taskmanager|zookeeper]
distribute() {
  local target=$1
  local dest=$2
  local src=$release_root
  [[ $# -lt 3 ]] || src=$3
  local kind=openmldb
  [[ $# -lt 4 ]] || kind=$4

  local over_ssh=true
  if [[ "$OPENMLDB_FORCE_LOCAL" == true || "$target" == localhost || "$target" == 127.0.0.1 ]]; then
    over_ssh=false
    if [[ "$dest" == "$src" ]]; then
      echo "skip rsync as dest=src: $dest"
      return
    fi
  fi

  run_auto "$target" "mkdir -p $dest > /dev/null 2>&1"
  local to=$dest
  if [[ "$over_ssh" == true ]]; then
    to=$target:$dest
  fi
  echo "copy $src to $target:$dest"

  if [[ "$kind" == zookeeper ]]; then
    rsync -arz "$src"/* "$to"/
    rsync -arz "$release_root/sbin/deploy.sh" "$to"/sbin/
    return
  fi
  local parts=(bin sbin conf udf)
  if [[ "$kind" == taskmanager ]]; then
    parts=(bin sbin conf taskmanager)
    if [[ -n "$RUNNER_EXISTING_SPARK_HOME" ]]; then
      echo "use existing spark $RUNNER_EXISTING_SPARK_HOME on $target, skip deploy spark"
    elif [[ "$over_ssh" == true ]]; then
      run_auto "$target" "mkdir -p ${SPARK_HOME} > /dev/null 2>&1"
      rsync -arz "${SPARK_HOME}/" "$target:${SPARK_HOME}/"
    fi
  fi
  local part
  for part in "${parts[@]}"
  do
    rsync -arz "$src/$part"/ "$to/$part"/
  done
}

# deploy_role ROLE PORT_VARIABLE [PREFIX]: distribute and configure every ROLE entry.
deploy_role() {
  local role=$1
  local port_variable=$2
  local prefix=${3:-}
  local kind=openmldb
  [[ "$role" != taskmanager ]] || kind=taskmanager
  local entry host port dir
  for entry in $(parse_host conf/hosts "$role")
  do
    host=$(field 1 "$entry")
    port=$(field 2 "$entry")
    dir=$(field 3 "$entry")
    if [[ "$role" == taskmanager && "$spark_ready" != true ]]; then
      deploy_spark
      spark_ready=true
    fi
    echo "deploy $role to $host:$port $dir"
    distribute "$host" "$dir" "$release_root" "$kind"
    run_auto "$host" "cd $dir && ${prefix}OPENMLDB_HOST=$host $port_variable=$port OPENMLDB_ZK_CLUSTER=${OPENMLDB_ZK_CLUSTER} OPENMLDB_ZK_ROOT_PATH=${OPENMLDB_ZK_ROOT_PATH} sbin/deploy.sh $role"
  done
}

# The real script's download_spark, without the download.
deploy_spark() {
  if [[ -z "${SPARK_HOME}" ]]; then
    echo "[ERROR] SPARK_HOME is not set"
    return
  fi
  if [[ -d "${SPARK_HOME}" ]]; then
    echo "${SPARK_HOME} already exists. Skip deploy spark locally"
    return
  fi
  # Not a directory: a dangling symlink, say. Clear it away first.
  rm -fv "${SPARK_HOME}"
  echo "Downloading openmldbspark..."
  local dist=spark-3.2.1-bin-openmldbspark
  if [[ -e "$dist.tgz" ]]; then
    echo "Skip downloading openmldbspark as $dist.tgz already exists"
  else
    echo "[ERROR] $(pwd)/$dist.tgz is missing and this sandbox has no network, so it is not downloaded" \
      "(OpenMLDB's deploy-all.sh would fetch" \
      "https://github.com/4paradigm/spark/releases/download/v3.2.1-openmldb${OPENMLDB_VERSION}/$dist.tgz)." \
      "Put it there first: a .tgz whose top directory is $dist/ (for a sandbox release, the" \
      "$dist-<version>/ directory beside it), or set SPARK_HOME or RUNNER_EXISTING_SPARK_HOME in" \
      "conf/openmldb-env.sh to an existing Spark directory." >&2
    exit 1
  fi
  tar -xzf "$dist.tgz"
  ln -s "$(pwd)/$dist" "${SPARK_HOME}"
}

deploy_zookeeper() {
  if [[ -e "$OPENMLDB_ZK_HOME" ]]; then
    echo "${OPENMLDB_ZK_HOME} already exists. Skip download zookeeper."
  else
    local dist=zookeeper-3.4.14
    if [[ -e "$dist.tar.gz" ]]; then
      echo "Skip downloading zookeeper as $dist.tar.gz already exists"
    else
      echo "Downloading zookeeper..."
      echo "[ERROR] $(pwd)/$dist.tar.gz is missing and this sandbox has no network, so it is not downloaded" \
        "(OpenMLDB's deploy-all.sh would fetch https://archive.apache.org/dist/zookeeper/$dist/$dist.tar.gz)." \
        "Use an existing ZooKeeper instead: OPENMLDB_USE_EXISTING_ZK_CLUSTER=true and OPENMLDB_ZK_CLUSTER" \
        "in conf/openmldb-env.sh." >&2
      exit 1
    fi
    tar -zxf "$dist.tar.gz"
    ln -s "$dist" "$OPENMLDB_ZK_HOME"
  fi

  local entry host port dir myid quorum=
  myid=1
  for entry in $(parse_host conf/hosts zookeeper)
  do
    quorum=${quorum:+$quorum|}server.$myid=$(field 1 "$entry"):$(field 4 "$entry"):$(field 5 "$entry")
    myid=$((myid + 1))
  done
  myid=1
  for entry in $(parse_host conf/hosts zookeeper)
  do
    host=$(field 1 "$entry")
    port=$(field 2 "$entry")
    dir=$(field 3 "$entry")
    echo "deploy zookeeper to $host:$port $dir"
    distribute "$host" "$dir" "$OPENMLDB_ZK_HOME" zookeeper
    run_auto "$host" "cd $dir && OPENMLDB_HOST=$host OPENMLDB_ZK_HOME=$dir OPENMLDB_ZK_QUORUM=\"$quorum\" OPENMLDB_ZK_MYID=$myid OPENMLDB_ZK_CLUSTER_CLIENT_PORT=$port sbin/deploy.sh zookeeper"
    myid=$((myid + 1))
  done
}

echo "OPENMLDB envs:"
printenv | grep OPENMLDB_
printenv | grep SPARK_HOME
echo ""

if [[ "$OPENMLDB_MODE" != cluster ]]; then
  echo "Deploy is only needed when OPENMLDB_MODE=cluster"
  exit 2
fi

saved_ifs=$IFS
IFS=$'\n'
deploy_role tablet OPENMLDB_TABLET_PORT
deploy_role nameserver OPENMLDB_NAMESERVER_PORT
deploy_role apiserver OPENMLDB_APISERVER_PORT
spark_ready=false
if [[ -n "${RUNNER_EXISTING_SPARK_HOME}" ]]; then
  echo "use $RUNNER_EXISTING_SPARK_HOME, skip download openmldbspark"
  spark_ready=true
fi
deploy_role taskmanager OPENMLDB_TASKMANAGER_PORT "SPARK_HOME=${SPARK_HOME} "
if [[ "${OPENMLDB_USE_EXISTING_ZK_CLUSTER}" != true ]]; then
  deploy_zookeeper
fi
IFS=$saved_ifs
