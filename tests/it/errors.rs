//! Golden tests: the exact text operators see for bad scripts and bad config.

use crate::support;

fn golden_dir() -> std::path::PathBuf {
    support::repo().join("tests/it")
}

fn run_golden(args: &[&str]) -> support::Run {
    support::run_in(&golden_dir(), args, &[])
}

#[test]
fn failure_inside_stdlib_module_shows_file_line_caret_and_call_chain() {
    let out = run_golden(&["run", "golden/stdlib-failure.rhai"]);
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        r#"error: "0.9" is not an OpenMLDB version: expected X.Y.Z, X.Y.Z-<hash> or "openmldb version X.Y.Z-<hash>"
  --> stdlib/version.rhai:18:9
   |
18 |         throw `"${text}" is not an OpenMLDB version: expected X.Y.Z, X.Y.Z-<hash> or "openmldb version X.Y.Z-<hash>"`;
   |         ^
  = call chain:
      golden/stdlib-failure.rhai:8:14  calls target_version()
      golden/stdlib-failure.rhai:5:14  calls parse()
      stdlib/version.rhai:18:9         fails here
"#
    );
}

#[test]
fn syntax_error_is_bad_input() {
    let out = run_golden(&["run", "golden/syntax.rhai"]);
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        "error: Unexpected ';'\n  --> golden/syntax.rhai:2:12\n  |\n2 | let b = a +;\n  |            ^\n"
    );
}

#[test]
fn unknown_function_is_rejected_before_the_script_runs() {
    let out = run_golden(&["run", "golden/unknown-fn.rhai"]);
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        "error: unknown function zk::chilren; did you mean zk::children?\n  \
         --> golden/unknown-fn.rhai:2:17\n  |\n2 | let nodes = zk::chilren(\"nodes\");\n  |                 ^\n"
    );
    assert_eq!(out.stdout, "", "the script ran before the check");
}

#[test]
fn config_error_names_file_line_and_key() {
    let out = run_golden(&["run", "golden/syntax.rhai", "--cluster", "golden/bad-config.toml"]);
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        "error: `127.0.0.2` is not an endpoint; expected host:port, for example 10.0.0.1:10921\n  \
         --> golden/bad-config.toml:5:12\n  |\n5 | endpoint = \"127.0.0.2\"\n  |            ^^^^^^^^^^^\n  \
         = key: component[0].endpoint\n"
    );
}

#[test]
fn unknown_config_key_is_named_with_the_expected_ones() {
    let out = run_golden(&["run", "golden/syntax.rhai", "--cluster", "golden/typo-config.toml"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.starts_with(
            "error: invalid cluster config: unknown field `zk_root`, expected one of `zk_cluster`, `zk_root_path`"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("  --> golden/typo-config.toml:2:1\n  |\n2 | zk_root = \"/openmldb\"\n  | ^^^^^^^\n"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.ends_with("  = help: did you mean `zk_root_path`? README.md lists every key\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_config_file_and_missing_module_are_bad_input() {
    let out = run_golden(&["run", "golden/syntax.rhai", "--cluster", "golden/nope.toml"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.starts_with("error: cannot read cluster config golden/nope.toml"), "{}", out.stderr);
    let dir = tempfile::tempdir().unwrap();
    let script = support::write(dir.path(), "m.rhai", "import \"rolling_nope\" as r;\n");
    let out = support::run(&["run", &script]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("module `rolling_nope` not found"), "{}", out.stderr);
}

#[test]
fn unreachable_zookeeper_is_an_operation_failure_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on: bind one, then release it.
    let port = mldb_upgrade::sandbox::zookeeper::free_loopback_port().unwrap();
    let cluster = support::write(
        dir.path(),
        "c.toml",
        &format!("zk_cluster = \"127.0.0.1:{port}\"\nzk_connect_timeout = \"1s\"\n[ssh]\ntransport = \"local\"\n"),
    );
    let script = support::write(dir.path(), "z.rhai", "zk::children(\"nodes\");\n");
    let out = support::run(&["run", &script, "--cluster", &cluster]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains(&format!("cannot reach ZooKeeper at 127.0.0.1:{port}")), "{}", out.stderr);
    assert!(out.stderr.contains("Check that ZooKeeper is running"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 5, "one screen, no stack dump: {}", out.stderr);
}
