"""Writes rows through OpenMLDB's own Python SDK (`pip install openmldb`), for `mldb-upgrade
sandbox load --client sdk`.

One INSERT per row, round robin over the tables, at a fixed rate, never retried (the SDK does
not retry a refused write either). Each INSERT is parameterized, `INSERT INTO t VALUES (?, ?)`,
as applications write (the SDK compiles a statement once and caches it; a literal INSERT costs
it about 20 ms of CPU per row, compiled anew each time), on one connection per database (the
SDK resolves a parameterized INSERT's table in the connection's database only). Each write is
reported on stdout as one JSON line, when its INSERT returned:

    {"ack": <table index>, "key": <key>, "at_ms": <when it was issued>}
    {"fail": <table index>, "key": <key>, "at_ms": ..., "error": <the SDK's message>}

The first line is {"connected": <ms the connect took>}; the tool writes the load report.
"""

import argparse
import json
import signal
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--zk", required=True)
    parser.add_argument("--zk-root", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--tables", required=True, help="db.table,db.table,...")
    parser.add_argument("--run", required=True, help="key prefix, unique per run")
    args = parser.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))

    import openmldb.dbapi

    started = time.time()
    tables = [name.split(".", 1) for name in args.tables.split(",")]
    cursors = {}
    for db, _ in tables:
        if db not in cursors:
            cursors[db] = openmldb.dbapi.connect(zk=args.zk, zkPath=args.zk_root, database=db).cursor()
    emit({"connected": int((time.time() - started) * 1000)})
    interval = 1.0 / args.rate
    started = time.time()
    seq = 0
    while not stop:
        due = started + seq * interval
        # A load that falls behind its rate still stops on time.
        if due - started >= args.duration or time.time() - started >= args.duration:
            break
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        index = seq % len(tables)
        key = "%s-%09d" % (args.run, seq)
        seq += 1
        # row_value: {"key":...}, as the tool's own client writes it.
        value = json.dumps({"key": key}, separators=(",", ":"))
        at_ms = int(time.time() * 1000)
        db, table = tables[index]
        try:
            cursors[db].execute("INSERT INTO %s VALUES (?, ?)" % table, (key, value))
            emit({"ack": index, "key": key, "at_ms": at_ms})
        except Exception as error:  # the SDK raises DatabaseError and friends
            emit({"fail": index, "key": key, "at_ms": at_ms, "error": str(error).strip()[:300]})


def emit(line):
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
