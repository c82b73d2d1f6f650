//! Upgrade primitives against sandbox clusters: drain and restore leaders, the auto_failover
//! guard, recover data, waits. Each test checks the cluster's real state afterwards.

use std::path::Path;
use std::time::{Duration, Instant};

use mldb_upgrade::sandbox;

use crate::support::{self, Sandbox};

/// Leader placement, replica count and auto_failover, as one comparable line per item.
const SNAPSHOT: &str = r#"
fn snapshot() {
    let leaders = ns::partitions().filter(|r| r.leader && r.alive).map(|r| `${r.db}.${r.table}/${r.pid}@${r.endpoint}`);
    leaders.sort();
    #{ leaders: leaders, replicas: ns::partitions().len(), auto_failover: ns::auto_failover() }
}
"#;

fn wait_file_contains(path: &Path, text: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !std::fs::read_to_string(path).unwrap_or_default().contains(text) {
        assert!(Instant::now() < deadline, "{} never contained {text}", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn drain_then_restore_keeps_placement_for_1_2_and_3_replica_tables() {
    let sb = Sandbox::up(&[]);
    let ep = sb.tablet(1);
    let out = sb.run(&format!(
        r#"{SNAPSHOT}
        let ep = "{ep}";
        let before = snapshot();
        // The tablet must lead partitions of tables with 1, 2 and 3 replicas.
        let counts = #{{}};
        for r in ns::partitions().filter(|r| r.endpoint == ep && r.leader) {{
            counts[`${{ns::partitions().filter(|x| x.tid == r.tid && x.pid == r.pid).len()}}`] = true;
        }}
        print("leads partitions with replica counts " + counts.keys());
        let plan = (|| {{ upgrade::drain_leaders(ep) }});
        let drained = upgrade::with_auto_failover_off(|| upgrade::drain_leaders(ep));
        print("moved " + drained.moves.len() + " temp " + drained.moves.filter(|m| m.temp_replica).len());
        print("leads after drain " + ns::partitions().filter(|r| r.endpoint == ep && r.leader && r.alive).len());
        print("recorded " + upgrade::recorded_moves(ep).len());
        upgrade::with_auto_failover_off(|| upgrade::restore_leaders(ep));
        let after = snapshot();
        print("placement identical " + (before.leaders == after.leaders));
        print("replicas " + before.replicas + " -> " + after.replicas);
        print("auto_failover " + before.auto_failover + " -> " + after.auto_failover);
        print("journal empty " + upgrade::recorded_moves(ep).is_empty());
        print("healthy " + upgrade::verify(0).healthy);
        "#
    ));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let o = &out.stdout;
    assert!(o.contains("leads partitions with replica counts [\"1\", \"2\", \"3\"]"), "{o}");
    assert!(o.contains("leads after drain 0"), "{o}");
    assert!(!o.contains("moved 0 "), "{o}");
    assert!(!o.contains("temp 0"), "single-replica partitions get temporary replicas: {o}");
    assert!(o.contains("placement identical true"), "{o}");
    let replicas: Vec<&str> = o.lines().find(|l| l.starts_with("replicas ")).unwrap().split(' ').collect();
    assert_eq!(replicas[1], replicas[3], "temporary replicas left behind: {o}");
    assert!(o.contains("auto_failover true -> true"), "{o}");
    assert!(o.contains("journal empty true"), "{o}");
    assert!(o.contains("healthy true"), "{o}");
}

/// The stock flow stops a tablet right after its drain: the replaced leaders are left fenced
/// (followers on their tablet, C§3.5) and not alive for recover data after the restart, and
/// nothing about the placement or the replicas differs at the end.
#[test]
fn a_drain_before_a_stop_leaves_the_replaced_leaders_fenced_until_recover_data() {
    let sb = Sandbox::up(&[]);
    let ep = sb.tablet(1);
    let out = sb.run(&format!(
        r#"{SNAPSHOT}
        let ep = "{ep}";
        let before = snapshot();
        upgrade::with_auto_failover_off(|| {{
            let drained = upgrade::drain_leaders(ep, #{{ readd_followers: false }});
            let replaced = ns::partitions().filter(|r| r.endpoint == ep && r.leader && !r.alive).len();
            print(`moved ${{drained.moves.len()}}, replaced leaders not alive ${{replaced}}`);
            print(`leading on the tablet ${{tablet::status(ep).filter(|p| p.mode == "kTableLeader").len()}}`);
            component::stop(ep);
            component::start(ep);
            upgrade::recover_data(#{{ down_leaders: "wait" }});
            print(`not alive after recover data ${{ns::partitions().filter(|r| r.endpoint == ep && !r.alive).len()}}`);
            upgrade::restore_leaders(ep);
        }});
        let after = snapshot();
        print("placement identical " + (before.leaders == after.leaders));
        print("replicas " + before.replicas + " -> " + after.replicas);
        print("healthy " + upgrade::verify(0).healthy);
        print("auto_failover " + ns::auto_failover());
        try {{ upgrade::restore_leaders(ep, #{{ readd_followers: false }}); }} catch (e) {{ print(`restore: ${{e}}`); }}
        "#
    ));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let o = &out.stdout;
    let moved: usize = o.split("moved ").nth(1).and_then(|r| r.split(',').next()).and_then(|n| n.parse().ok()).unwrap();
    assert!(moved > 0, "{o}");
    assert!(o.contains(&format!("replaced leaders not alive {moved}\n")), "{o}");
    assert!(o.contains("leading on the tablet 0\n"), "the replaced leaders refuse writes (fenced): {o}");
    assert!(o.contains("not alive after recover data 0\n"), "{o}");
    assert!(o.contains("placement identical true"), "{o}");
    let replicas: Vec<&str> = o.lines().find(|l| l.starts_with("replicas ")).unwrap().split(' ').collect();
    assert_eq!(replicas[1], replicas[3], "temporary replicas left behind: {o}");
    assert!(o.contains("healthy true"), "{o}");
    assert!(o.contains("auto_failover true"), "{o}");
    assert!(
        o.contains("restore: upgrade::restore_leaders: unknown option `readd_followers`"),
        "only a drain takes it: {o}"
    );
}

/// The stock flow adds the next tablet's temporary replicas while the tablet before it stops
/// and starts (upgrade::prepare_drain, in the background), as here: only for the next tablet's
/// single-replica partitions (not for those whose other replica is on the stopped tablet), none
/// on the stopped tablet (`avoid`); recorded as the next tablet's drain, they are what verify
/// expects (it waits for them first); that drain only switches to them, with no second
/// AddReplica; and its restore deletes them without an op of the nameserver's, leaving
/// placement and replica counts as before. An unknown tablet is refused at once.
#[test]
fn prepare_drain_adds_the_temporary_replicas_ahead_and_the_drain_only_switches_to_them() {
    let sb = Sandbox::up(&[]);
    let (stopping, next) = (sb.tablet(1), sb.tablet(2));
    let out = sb.run(&format!(
        r#"{SNAPSHOT}
        let ep = "{stopping}";
        let next = "{next}";
        let before = snapshot();
        let replicas = #{{}};
        for r in ns::partitions() {{ replicas[`${{r.tid}}/${{r.pid}}`] = (replicas[`${{r.tid}}/${{r.pid}}`] ?? 0) + 1; }}
        let singles = ns::partitions().filter(|r| r.endpoint == next && r.leader && replicas[`${{r.tid}}/${{r.pid}}`] == 1);
        print(`next leads single-replica ${{singles.len()}}`);
        let since = ns::op_index();
        upgrade::with_auto_failover_off(|| {{
            upgrade::drain_leaders(ep, #{{ readd_followers: false }});
            component::stop(ep);
            upgrade::prepare_drain(next, #{{ avoid: [ep] }});
            component::start(ep);
            upgrade::recover_data(#{{ down_leaders: "wait" }});
            upgrade::restore_leaders(ep);
            let v = upgrade::verify(since);
            print(`healthy with them ${{v.healthy}}: ${{v.summary}}`);
            let ahead = upgrade::recorded_moves(next).filter(|m| m.temp_replica);
            print(`added ahead ${{ahead.len()}}, on the stopped tablet ${{ahead.filter(|m| m.to == ep).len()}}`);
            print(`leaders moved ahead ${{upgrade::recorded_moves(next).filter(|m| m.state != "planned").len()}}`);
            let drained = upgrade::drain_leaders(next);
            print(`drain temporary ${{drained.moves.filter(|m| m.temp_replica).len()}}`);
            let before_restore = ns::op_index();
            upgrade::restore_leaders(next);
            let others = ns::ops().filter(|o| o.op_id > before_restore && o.op_type != "kChangeLeaderOP");
            print(`restore ops other than ChangeLeader ${{others.len()}}: ${{others.map(|o| o.op_type)}}`);
        }});
        let adds = ns::ops().filter(|o| o.op_id > since && o.op_type == "kAddReplicaOP");
        let ours = adds.filter(|o| singles.some(|r| r.table == o.table && r.pid == o.pid));
        print(`AddReplica ops for the next tablet ${{ours.len()}}`);
        let after = snapshot();
        print("placement identical " + (before.leaders == after.leaders));
        print("replicas " + before.replicas + " -> " + after.replicas);
        print("healthy " + upgrade::verify(since).healthy);
        print("drained " + upgrade::drained_tablets().len());
        try {{ upgrade::with_auto_failover_off(|| upgrade::prepare_drain("127.0.0.1:1", #{{}})); }} catch (e) {{ print(`unknown: ${{e}}`); }}
        "#
    ));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let o = &out.stdout;
    let number = |prefix: &str| -> usize {
        o.split(prefix)
            .nth(1)
            .and_then(|r| r.split([',', ':', '\n']).next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap()
    };
    let singles = number("next leads single-replica ");
    assert!(singles > 0, "the next tablet leads a single-replica partition in the sandbox: {o}");
    assert_eq!(number("added ahead "), singles, "{o}");
    assert!(o.contains("healthy with them true"), "{o}");
    assert!(o.contains("on the stopped tablet 0"), "{o}");
    assert!(o.contains("leaders moved ahead 0"), "{o}");
    assert_eq!(number("drain temporary "), singles, "{o}");
    assert_eq!(number("AddReplica ops for the next tablet "), singles, "one AddReplica each: {o}");
    // The temporary replicas go without RecoverTable or DelReplica: removed from the metadata
    // and dropped on their tablet, as DelReplica's tasks would.
    assert_eq!(number("restore ops other than ChangeLeader "), 0, "{o}");
    assert!(o.contains("placement identical true"), "{o}");
    let replicas: Vec<&str> = o.lines().find(|l| l.starts_with("replicas ")).unwrap().split(' ').collect();
    assert_eq!(replicas[1], replicas[3], "temporary replicas left behind: {o}");
    assert!(o.contains("healthy true"), "{o}");
    assert!(o.contains("drained 0"), "{o}");
    assert!(o.contains("unknown: ") && o.contains("127.0.0.1:1"), "{o}");
}

#[test]
fn restore_finishes_a_drain_killed_halfway() {
    let sb = Sandbox::up(&[]);
    let ep = sb.tablet(2);
    let before = sb.run(&format!("{SNAPSHOT} print(snapshot());"));
    assert_eq!(before.code, 0, "{}", before.stderr);
    // Drain one partition at a time and kill -9 the orchestrator once a move is made.
    let mut child = sb
        .spawn(&format!(r#"upgrade::with_auto_failover_off(|| upgrade::drain_leaders("{ep}", #{{concurrency: 1}}));"#));
    let mirror = sb.journal_file();
    wait_file_contains(&mirror, "\"state\":\"moved\"", Duration::from_secs(60));
    child.kill().unwrap();
    child.wait().unwrap();
    let mid = sb.run(&format!(
        r#"print("af " + ns::auto_failover()); print("drained " + upgrade::drained_tablets()); print("moved " + upgrade::recorded_moves("{ep}").filter(|m| m.state == "moved").len());"#
    ));
    assert!(mid.stdout.contains("af false"), "the killed run left auto_failover off: {}", mid.stdout);
    assert!(mid.stdout.contains(&format!("drained [\"{ep}\"]")), "{}", mid.stdout);
    // The next run heals: restore auto_failover, finish the tablet.
    let out = sb.run(&format!(
        r#"{SNAPSHOT}
        upgrade::restore_auto_failover();
        upgrade::with_auto_failover_off(|| upgrade::restore_leaders("{ep}"));
        print(snapshot());
        print("drained " + upgrade::drained_tablets().len());
        "#
    ));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.starts_with(before.stdout.trim_end()), "before: {}\nafter: {}", before.stdout, out.stdout);
    assert!(out.stdout.contains("drained 0"), "{}", out.stdout);
}

#[test]
fn auto_failover_is_restored_after_errors_ctrl_c_and_a_killed_run() {
    let sb = Sandbox::up(&["--tablets", "2"]);
    // An error inside the block.
    let out = sb.run(
        r#"upgrade::with_auto_failover_off(|| { print("inside " + ns::auto_failover()); throw "injected failure"; });"#,
    );
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("inside false"), "{}", out.stdout);
    assert!(out.stderr.contains("injected failure"), "{}", out.stderr);
    assert_eq!(sb.run("print(ns::auto_failover());").stdout, "true\n");
    // Ctrl-C inside the block.
    let marker = sb.dir.join("inside");
    let mut child = sb.spawn(&format!(
        r#"upgrade::with_auto_failover_off(|| {{ ssh::exec("127.0.0.1", "touch {}"); sleep("60s"); }});"#,
        marker.display()
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "block never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    assert_eq!(sb.run("print(ns::auto_failover());").stdout, "true\n");
    // kill -9: the next run restores it from the journal.
    std::fs::remove_file(&marker).unwrap();
    let mut child = sb.spawn(&format!(
        r#"upgrade::with_auto_failover_off(|| {{ ssh::exec("127.0.0.1", "touch {}"); sleep("60s"); }});"#,
        marker.display()
    ));
    while !marker.exists() {
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(sb.run("print(ns::auto_failover());").stdout, "false\n");
    let out = sb.run(
        "print(upgrade::restore_auto_failover()); print(ns::auto_failover()); print(upgrade::restore_auto_failover());",
    );
    assert_eq!(out.stdout, "true\ntrue\n\n", "{}", out.stderr);
}

#[test]
fn recover_data_after_a_tablet_restart_with_auto_failover_off() {
    let sb = Sandbox::up(&["--no-auto-failover"]);
    let state = sandbox::load_state(&sb.dir).unwrap();
    let tablet = state.components.iter().find(|c| c.role.as_str() == "tablet").unwrap().clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(sandbox::start_sh(&tablet, "stop", false));
    // The old ephemeral node must expire before the tablet can register again (C§1.3).
    let ep = tablet.endpoint.clone();
    let gone = sb.run(&format!(r#"let t = 0; while zk::exists("nodes/{ep}") {{ sleep("200ms"); t += 1; if t > 100 {{ throw "node never expired"; }} }} print("expired");"#));
    assert_eq!(gone.stdout, "expired\n", "{}", gone.stderr);
    rt.block_on(sandbox::start_sh(&tablet, "start", false));
    let out = sb.run(&format!(
        r#"
        wait::nameserver_leader("30s");
        let t = 0;
        while ns::tablets().filter(|x| x.endpoint == "{ep}" && x.state == "kHealthy").is_empty() {{ sleep("200ms"); t += 1; if t > 100 {{ throw "tablet not healthy"; }} }}
        print("loaded after restart " + tablet::status("{ep}").len());
        let v = upgrade::verify(0);
        print("healthy before recovery " + v.healthy + " mismatches " + (v.mismatches.len() > 0));
        let recovered = upgrade::recover_data();
        print("recovered tables " + recovered.len());
        wait::tablet_healthy("{ep}", "60s");
        let v = upgrade::verify(0);
        print("healthy after recovery " + v.healthy);
        print("auto_failover " + ns::auto_failover());
        "#
    ));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let o = &out.stdout;
    assert!(o.contains("loaded after restart 0"), "a restarted tablet comes up empty (C§1.3): {o}");
    assert!(o.contains("healthy before recovery false mismatches true"), "{o}");
    assert!(!o.contains("recovered tables 0"), "{o}");
    assert!(o.contains("healthy after recovery true"), "{o}");
    assert!(o.contains("auto_failover false"), "{o}");
}

#[test]
fn waits_that_time_out_say_what_they_waited_for() {
    let sb = Sandbox::up(&["--tablets", "1"]);
    let out = sb.run(r#"wait::tablet_healthy("127.0.0.1:1", "1s");"#);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with("error: timed out after 1s waiting for tablet 127.0.0.1:1 to be healthy (registered, kHealthy, every partition loaded and alive); last seen: no ZooKeeper node nodes/127.0.0.1:1"),
        "{}",
        out.stderr
    );
    let ep = sb.tablet(1);
    let out = sb.run(&format!(r#"wait::version("{ep}", "9.9.9", "500ms");"#));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(&format!("waiting for {ep} to report version 9.9.9; last seen: it reports 0.9.2-")),
        "{}",
        out.stderr
    );
}

#[test]
fn dry_run_drain_prints_the_moves_and_makes_none() {
    let sb = Sandbox::up(&[]);
    let ep = sb.tablet(3);
    let file = support::write(
        &sb.dir,
        "d.rhai",
        &format!(
            r#"{SNAPSHOT} let b = snapshot(); let r = upgrade::with_auto_failover_off(|| upgrade::drain_leaders("{ep}")); print("planned " + r.moves.len()); print(b == snapshot());"#
        ),
    );
    let out = support::run(&["run", &file, "--cluster", &sb.cluster(), "--dry-run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let moves = out.stdout.lines().filter(|l| l.starts_with("[dry-run] would move leader of ")).count();
    assert!(moves > 0, "{}", out.stdout);
    assert!(out.stdout.contains(&format!("planned {moves}\ntrue\n")), "{}", out.stdout);
    assert!(out.stdout.contains(&format!(" {ep} -> ")), "{}", out.stdout);
}

/// A leader is fenced before its partition moves (ChangeRole follower, C§3.5): writes to it are
/// refused rather than acknowledged and lost. A run killed while a fence stands leaves the
/// partition unwritable; the next run's upgrader lifts the fence from the journal.
#[test]
fn a_fence_left_by_a_killed_run_is_lifted_by_the_next_one() {
    use mldb_upgrade::cluster::ns::Partition;
    use mldb_upgrade::cluster::upgrade::MoveSettings;
    use mldb_upgrade::sandbox::client::{Client, ClientError, ClientOptions, TableName};

    let sb = Sandbox::up(&[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = mldb_upgrade::config::ClusterConfig::load(Path::new(&sb.cluster())).unwrap();
        let first = sb.upgrader();
        let original_auto_failover = first.disable_auto_failover().await.unwrap();
        let table = first.cluster.ns.show_table("demo", "double").await.unwrap().expect("demo.double");
        let partition = &table.table_partition[0];
        let leader = partition.alive_leader().expect("a leader").endpoint.clone();
        let follower = partition.partition_meta.iter().find(|m| !m.is_leader).expect("a follower").endpoint.clone();
        let pid = partition.pid;

        let client = Client::connect(ClientOptions {
            zk_cluster: config.zk.cluster.clone(),
            zk_root_path: config.zk.root_path.clone(),
            zk_cert: None,
        })
        .await
        .unwrap();
        let double = TableName { db: "demo".into(), name: "double".into() };
        // A key of that partition.
        let key = (0..)
            .map(|i| format!("fence-{i}"))
            .find(|k| mldb_upgrade::sandbox::client::partition_of(k, table.table_partition.len() as u32) == pid)
            .unwrap();
        client.put(&double, &key, "before").await.expect("the leader takes writes");

        // The first run fences the leader and is "killed" before the ChangeLeader.
        let (fence, outcome) = first
            .fence_leader(Partition::new(&table, pid), &leader, &follower, &MoveSettings::default())
            .await
            .unwrap();
        assert_eq!(fence.endpoint, leader);
        assert!(outcome.attempts >= 1, "{outcome:?}");
        drop(first);
        match client.put(&double, &key, "fenced").await {
            Err(ClientError::Tablet { code: 103, endpoint, .. }) => assert_eq!(endpoint, leader),
            other => panic!("a fenced leader must refuse writes with 103, got {other:?}"),
        }

        // The next run lifts it.
        let next = sb.upgrader();
        assert_eq!(next.lift_stale_fences().await.unwrap().lifted, 1);
        let status = next.cluster.tablets.partition_status(&leader, table.tid, pid).await.unwrap().expect("loaded");
        assert!(status.is_leader(), "{status:?}");
        let ack = client.put(&double, &key, "after").await.expect("writable again");
        assert_eq!(ack.endpoint, leader);
        assert_eq!(next.lift_stale_fences().await.unwrap().lifted, 0, "the fence record is gone");
        // Nothing moved: the nameserver still names the same leader.
        let now = next.cluster.ns.show_table("demo", "double").await.unwrap().unwrap();
        assert_eq!(now.table_partition[0].alive_leader().unwrap().endpoint, leader);
        assert_eq!(next.restore_auto_failover().await.unwrap(), Some(original_auto_failover));
    });
}

/// A run killed after it queued a ChangeLeader leaves a fence and an op that has not run. The
/// next run lifts the fence only once the op is done (C§3.5, C§6 hazards 5 and 6): lifted
/// before, the old leader would take writes again in its term, the op would then make the
/// candidate lead in a new one, and the partition would have two leaders, the old one
/// acknowledging writes the new one never gets. The op is held in its queue (pid % concurrency,
/// C§3.3) behind an AddReplica, whose tablet tasks the nameserver polls (C§3.2).
#[test]
fn a_stale_fence_is_lifted_only_after_the_change_leader_the_killed_run_queued() {
    use mldb_upgrade::cluster::ns::Partition;
    use mldb_upgrade::cluster::upgrade::MoveSettings;

    let sb = Sandbox::up(&[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let first = sb.upgrader();
        first.disable_auto_failover().await.unwrap();
        let ns = &first.cluster.ns;
        let double = ns.show_table("demo", "double").await.unwrap().expect("demo.double");
        let pid = 0;
        let partition = &double.table_partition[pid as usize];
        let leader = partition.alive_leader().expect("a leader").endpoint.clone();
        let follower = partition.partition_meta.iter().find(|m| !m.is_leader).expect("a follower").endpoint.clone();
        // An AddReplica (queue 0) of demo.single pid 0 holds the queue of pid 0.
        let single = ns.show_table("demo", "single").await.unwrap().expect("demo.single");
        let single_leader = single.table_partition[0].alive_leader().expect("a leader").endpoint.clone();
        let other = (1..=3).map(|n| sb.tablet(n)).find(|t| *t != single_leader).unwrap();

        // The killed run: fenced, and its ChangeLeader queued behind the AddReplica.
        let (fence, _) = first
            .fence_leader(Partition::new(&double, pid), &leader, &follower, &MoveSettings::default())
            .await
            .unwrap();
        ns.add_replica("demo", "single", 0, &other).await.unwrap();
        ns.change_leader("demo", "double", pid, &follower).await.unwrap();
        let queued = ns.ops_since(0, "demo", "double", pid).await.unwrap();
        assert!(queued.iter().any(|o| !o.is_finished()), "the ChangeLeader must still be queued: {queued:?}");
        drop(first);

        let next = sb.upgrader();
        let lifted = next.lift_stale_fences().await.unwrap();
        assert_eq!(lifted.lifted, 1, "{lifted:?}");
        assert!(lifted.left.is_empty(), "{lifted:?}");
        // Whatever the lift did, the queued op has run by now.
        let part = Partition::new(&double, pid);
        next.cluster.wait_partition_idle(part, std::time::Duration::from_secs(30)).await.unwrap();
        // One leader: the candidate, as the nameserver says; the fenced replica stayed a follower.
        let now = next.cluster.ns.show_table("demo", "double").await.unwrap().unwrap();
        assert_eq!(now.table_partition[pid as usize].alive_leader().unwrap().endpoint, follower);
        let tablets = &next.cluster.tablets;
        let old = tablets.partition_status(&fence.endpoint, double.tid, pid).await.unwrap().expect("loaded");
        assert!(!old.is_leader(), "the old leader must not lead again: {old:?}");
        let new = tablets.partition_status(&follower, double.tid, pid).await.unwrap().expect("loaded");
        assert!(new.is_leader(), "{new:?}");
        assert!(next.stale_fences().await.unwrap().is_empty());
    });
}

/// auto_failover is not put back while a tablet that leads partitions is down: the failover
/// would make followers lead that lack the dead leader's last acknowledged writes (C§3.4).
/// The refusal says why and what to do; once the tablet runs again and its data is recovered,
/// it is put back.
#[test]
fn auto_failover_stays_off_while_a_crashed_tablet_leads_partitions() {
    let sb = Sandbox::up(&["--tablets", "3"]);
    let t1 = sb.tablet(1);
    let off = sb.run("upgrade::disable_auto_failover(); print(ns::auto_failover());");
    assert_eq!(off.stdout, "false\n", "{}", off.stderr);
    let killed = support::run(&["sandbox", "fault", "--dir", sb.dir.to_str().unwrap(), "kill", &t1]);
    assert_eq!(killed.code, 0, "{}", killed.stderr);

    let held = sb.run("upgrade::restore_auto_failover();");
    assert_eq!(held.code, 1, "{}\n{}", held.stdout, held.stderr);
    assert!(
        held.stderr.contains(&format!(
            "auto_failover stays off, as these tablets are down while they lead partitions: {t1} ("
        )),
        "{}",
        held.stderr
    );
    assert!(held.stderr.contains("start the tablet(s) again and re-run the same command"), "{}", held.stderr);
    assert_eq!(sb.run("print(ns::auto_failover());").stdout, "false\n");

    let back = sb.run(&format!(
        r#"component::start("{t1}"); upgrade::recover_data(); wait::tablet_healthy("{t1}", "60s");
           print(upgrade::restore_auto_failover()); print(ns::auto_failover()); print(upgrade::verify(0).healthy);"#
    ));
    assert_eq!(back.code, 0, "{}\n{}", back.stdout, back.stderr);
    assert_eq!(back.stdout.lines().rev().take(3).collect::<Vec<_>>(), vec!["true", "true", "true"], "{}", back.stdout);
}
