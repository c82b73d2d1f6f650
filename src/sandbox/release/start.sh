#!/bin/bash
# bin/start.sh of a mldb-upgrade sandbox release.
#
# Behaves like OpenMLDB's release/bin/start.sh (reference O§1): the same commands, messages,
# pid files (bin/<component>.pid; in mon mode the mon pid there and the component pid in
# bin/<component>.pid.child), the /status start check, SIGTERM stop with a fixed wait, and its
# quirks: a failed start exits 0, stop always exits 0, an unknown operation exits 0.
#
# Sandbox-only: SANDBOX_SLEEP_SCALE multiplies every fixed wait, so tests can shrink them. It
# is read from the environment, else from conf/sandbox.env (written by `sandbox up --fast`;
# conf/ survives an upgrade's bin/ replacement); without either the waits are the real ones.

set -e

COMPONENTS="tablet tablet2 nameserver apiserver taskmanager standalone_tablet standalone_nameserver standalone_apiserver data_collector synctool"

usage() {
    echo "Usage: start.sh start/stop/restart <component> [mon]"
    echo "component: $COMPONENTS"
    echo "start flag 'mon': if use mon flag, we'll use mon to start the component"
    echo "    stop will kill both the mon and component automatically, don't need to use mon"
}

pause() {
    sleep "$(awk -v s="$1" -v f="${SANDBOX_SLEEP_SCALE:-1}" 'BEGIN { printf "%.3f", s * f }')"
}

# mon's restart delay (-s 10), scaled like the waits but at least 1 s (mon takes whole seconds).
restart_delay() {
    awk -v f="${SANDBOX_SLEEP_SCALE:-1}" 'BEGIN { d = int(10 * f + 0.5); if (d < 1) d = 1; print d }'
}

is_alive() {
    kill -0 "$1" > /dev/null 2>&1
}

read_pid() {
    tr -d '\0' < "$1"
}

if [ $# -lt 2 ]; then
    usage
    exit 1
fi

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
LD_LIBRARY_PATH="${LD_LIBRARY_PATH}:${ROOT}/udf"
export LD_LIBRARY_PATH
RED='\E[1;31m'
PLAIN='\E[0m'

OP=$1
COMPONENT=$2
KNOWN=false
for NAME in $COMPONENTS; do
    [ "$NAME" = "$COMPONENT" ] && KNOWN=true
done
if [ "$KNOWN" = false ]; then
    echo "No component named $COMPONENT in [$COMPONENTS]"
    exit 1
fi

if [ -z "${SANDBOX_SLEEP_SCALE:-}" ] && [ -f ./conf/sandbox.env ]; then
    SANDBOX_SLEEP_SCALE=$(grep '^SANDBOX_SLEEP_SCALE=' ./conf/sandbox.env | awk -F '=' '{print $2}')
fi

MON_MODE=false
if [ $# -gt 2 ] && [ "$3" = "mon" ]; then
    MON_MODE=true
fi
MON=./bin/mon
PID_FILE="./bin/$COMPONENT.pid"
mkdir -p "$(dirname "$PID_FILE")"

case "$COMPONENT" in
    taskmanager)
        LOG_DIR=$(grep job.log.path ./conf/"$COMPONENT".properties | awk -F '=' '{print $2}') ;;
    synctool|data_collector)
        LOG_DIR="$ROOT/logs" ;;
    *)
        LOG_DIR=$(grep log_dir ./conf/"$COMPONENT".flags | awk -F '=' '{print $2}') ;;
esac
if [ -z "$LOG_DIR" ]; then
    echo "Invalid log dir"
    exit 1
fi
mkdir -p "$LOG_DIR"

start_java() {
    if [ "$COMPONENT" = taskmanager ]; then
        echo "SPARK_HOME: ${SPARK_HOME}"
    fi
    if [ -f "./conf/$COMPONENT.properties" ]; then
        echo "Rewrite properties by ./conf/$COMPONENT.properties"
        cp "./conf/$COMPONENT.properties" "./$COMPONENT/conf/$COMPONENT.properties"
    fi
    pushd "./$COMPONENT/bin/" > /dev/null
    mkdir -p "$LOG_DIR"
    if [ "$MON_MODE" = true ]; then
        "$ROOT/$MON" "./$COMPONENT.sh" -d -s "$(restart_delay)" -l "$LOG_DIR/${COMPONENT}_mon.log" -m "$ROOT/$PID_FILE" -p "$ROOT/$PID_FILE.child"
        pause 3
        MON_PID=$(read_pid "$ROOT/$PID_FILE")
        PID=$(read_pid "$ROOT/$PID_FILE.child")
        echo "mon pid is $MON_PID, process pid is $PID, check $PID status"
    else
        sh "./$COMPONENT.sh" > "$LOG_DIR/$COMPONENT.log" 2>&1 &
        PID=$!
        echo "process pid is $PID"
    fi
    popd > /dev/null
    pause 10
    if is_alive "$PID"; then
        [ "$MON_MODE" = true ] || echo "$PID" > "$PID_FILE"
        echo "Start $COMPONENT success"
        exit 0
    fi
    echo -e "${RED}Start $COMPONENT failed! Please check log in $LOG_DIR/$COMPONENT[_mon].log and ./$COMPONENT/bin/logs/$COMPONENT.log ${PLAIN}"
}

start_native() {
    BIN=openmldb
    [ "$COMPONENT" = data_collector ] && BIN=data_collector
    if [ "$MON_MODE" = true ]; then
        "$MON" "./bin/$BIN --flagfile=./conf/$COMPONENT.flags --enable_status_service=true" -d -s "$(restart_delay)" -l "$LOG_DIR/${COMPONENT}_mon.log" -m "$PID_FILE" -p "$PID_FILE.child"
        pause 3
        MON_PID=$(read_pid "$PID_FILE")
        PID=$(read_pid "$PID_FILE.child")
        echo "mon pid is $MON_PID, process pid is $PID, check $PID status"
    else
        "./bin/$BIN" --flagfile="./conf/$COMPONENT.flags" --enable_status_service=true >> "$LOG_DIR/$COMPONENT.log" 2>&1 &
        PID=$!
        echo "process pid is $PID"
    fi
    if command -v curl > /dev/null 2>&1 && ! grep -q '^--use_name=true' "conf/$COMPONENT.flags"; then
        pause 3
        ENDPOINT=$(grep '^--endpoint' "./conf/$COMPONENT.flags" | grep -v '#' | awk -F '=' '{print $2}')
        TRIES=1
        while [ $TRIES -lt 12 ]; do
            if ! curl --show-error --silent -o /dev/null "http://$ENDPOINT/status"; then
                echo "curl server status failed, retry later"
                pause 1
                TRIES=$((TRIES + 1))
            elif is_alive "$PID"; then
                [ "$MON_MODE" = true ] || echo "$PID" > "$PID_FILE"
                echo "Start $COMPONENT success"
                exit 0
            else
                break
            fi
        done
    else
        echo "no curl, sleep 12s and then check the process running status"
        pause 12
        if is_alive "$PID"; then
            [ "$MON_MODE" = true ] || echo "$PID" > "$PID_FILE"
            echo "Start $COMPONENT success"
            exit 0
        fi
    fi
    echo -e "${RED}Start $COMPONENT failed! Please check log in $LOG_DIR/$COMPONENT[_mon].log and $LOG_DIR/$COMPONENT.INFO ${PLAIN}"
}

case "$OP" in
    start)
        echo "Starting $COMPONENT ... "
        if [ -f "$PID_FILE" ]; then
            PID=$(read_pid "$PID_FILE")
            if is_alive "$PID"; then
                echo -e "${RED}$COMPONENT already running as process $PID ${PLAIN}"
                exit 0
            fi
        fi
        if [ "$COMPONENT" = taskmanager ] || [ "$COMPONENT" = synctool ]; then
            start_java
        else
            start_native
        fi
        ;;
    stop)
        echo "Stopping $COMPONENT ... "
        if [ ! -f "$PID_FILE" ]; then
            echo "no $COMPONENT to stop (could not find file $PID_FILE)"
        else
            PID=$(read_pid "$PID_FILE")
            if is_alive "$PID"; then
                kill "$PID"
                pause 3
            fi
            rm "$PID_FILE"
        fi
        if [ ! -f "$PID_FILE.child" ]; then
            echo "Stop $COMPONENT success"
        else
            PID=$(read_pid "$PID_FILE.child")
            if is_alive "$PID"; then
                echo "After mon stopped, component is still alive, kill it"
                kill "$PID"
            fi
            rm "$PID_FILE.child"
            echo "Stop $COMPONENT success(mon mode)"
        fi
        ;;
    restart)
        shift
        cd "$ROOT/bin" || exit 1
        ./start.sh stop "$@"
        pause 15
        ./start.sh start "$@"
        ;;
    *)
        echo "Only support {start|stop|restart}" >&2
        ;;
esac
