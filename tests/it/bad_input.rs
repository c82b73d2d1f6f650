//! Bad input never changes the cluster: each case exits 2 with a message that fits on a screen
//! and says what to do, before the script runs, and afterwards the cluster is exactly as before
//! (versions, leaders, replicas, auto_failover, no run in the journal, every component
//! answering).

use crate::flow::{state, upgrade_args};
use crate::support::{self, Sandbox};

/// Lines a message may take and still fit on a screen.
const SCREEN: usize = 24;

#[test]
fn bad_input_is_refused_before_anything_changes() {
    let sb = Sandbox::up(&["--nameservers", "2", "--tablets", "2"]);
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &["--tar"]);
    let release = release.to_str().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    // A change first, then a typo: the change must not happen.
    let frob = support::write(scripts.path(), "frob.rhai", "ns::set_auto_failover(false);\nfrobnicate(1);\n");
    let before = state(&sb);
    let upgrade = support::repo().join("scripts/upgrade.rhai").display().to_string();
    let with = |extra: &[&str]| {
        let mut args = upgrade_args(&sb, release);
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let parent = rel.path().display().to_string();
    let cases: Vec<(&str, Vec<String>, String)> = vec![
        ("a bad duration", with(&["--set", "timeout=abc"]), "timeout=abc: `abc` is not a duration".into()),
        (
            "a bad choice",
            with(&["--set", "single_replica=bogus"]),
            "single_replica=bogus: expected add_replica or allow_unavailable".into(),
        ),
        (
            "a bad tablet order",
            with(&["--set", "tablet_order=bogus"]),
            format!("tablet_order=bogus: expected config, reverse, or every tablet endpoint ({}", sb.tablet(1)),
        ),
        ("a bad bake time", with(&["--set", "bake=xyz"]), "bake=xyz: `xyz` is not a duration".into()),
        ("a bad gate", with(&["--set", "confirm=maybe"]), "confirm=maybe: expected true or false".into()),
        ("a bad flag", with(&["--set", "allow_downgrade=yes"]), "allow_downgrade=yes: expected true or false".into()),
        (
            "a misspelled setting",
            with(&["--set", "singel_replica=add_replica"]),
            "singel_replica: no such setting; did you mean single_replica?".into(),
        ),
        (
            "a gate without a terminal",
            with(&["--set", "confirm=true"]),
            "confirm=true: asks before each phase, but there is no terminal to ask on".into(),
        ),
        (
            "a script with an unknown function",
            vec!["run".into(), frob.clone(), "--cluster".into(), sb.cluster()],
            "unknown function frobnicate".into(),
        ),
        (
            "no --cluster",
            vec!["run".into(), upgrade.clone(), "--set".into(), format!("release={release}")],
            "pass --cluster FILE".into(),
        ),
        (
            "the release's parent directory",
            with(&["--set", &format!("release={parent}")]),
            format!("did you mean --set release={release}?"),
        ),
        (
            "an empty release",
            with(&["--set", &format!("release={}", empty.path().display())]),
            "is not an OpenMLDB release: it has no bin/openmldb".into(),
        ),
        (
            "a plan with a bad setting",
            {
                let mut args = with(&["--set", "timeout=abc"]);
                args[0] = "plan".into();
                args
            },
            "timeout=abc: `abc` is not a duration".into(),
        ),
    ];
    for (case, args, expected) in cases {
        let out = support::run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(out.code, 2, "{case}: {}\n{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(&expected), "{case}: expected `{expected}` in:\n{}", out.stderr);
        assert!(out.stderr.lines().count() <= SCREEN, "{case}: more than a screen:\n{}", out.stderr);
        assert!(out.stderr.lines().all(|l| l.len() <= 300), "{case}: a line too long to read:\n{}", out.stderr);
        assert_eq!(out.stdout, "", "{case}: the script ran");
        assert_eq!(state(&sb), before, "{case} changed the cluster");
    }
}
