//! Every shipped script and module, and every rhai block in README.md, compiles.

use crate::support;

fn rhai_files(dir: &std::path::Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rhai_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rhai") {
            out.push(path.display().to_string());
        }
    }
}

#[test]
fn every_script_and_stdlib_module_passes_check() {
    let mut files = Vec::new();
    rhai_files(&support::repo().join("scripts"), &mut files);
    rhai_files(&support::repo().join("stdlib"), &mut files);
    assert!(files.len() >= 3, "{files:?}");
    let mut args = vec!["check"];
    args.extend(files.iter().map(String::as_str));
    let out = support::run(&args);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.stdout.lines().filter(|l| l.starts_with("ok: ")).count(), files.len());
}

#[test]
fn check_reports_a_broken_module_import() {
    let dir = tempfile::tempdir().unwrap();
    support::write(dir.path(), "helper.rhai", "fn f( { }\n");
    let main = support::write(dir.path(), "main.rhai", "import \"helper\" as h;\nh::f();\n");
    let out = support::run(&["check", &main]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("helper.rhai:1:"), "{}", out.stderr);
}

#[test]
fn readme_rhai_blocks_compile() {
    let readme = std::fs::read_to_string(support::repo().join("README.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut blocks = 0;
    let mut in_block = false;
    let mut current = String::new();
    for line in readme.lines() {
        if line.trim_start().starts_with("```rhai") {
            in_block = true;
            current.clear();
        } else if in_block && line.trim_start().starts_with("```") {
            in_block = false;
            blocks += 1;
            let file = support::write(dir.path(), &format!("readme-{blocks}.rhai"), &current);
            let out = support::run(&["check", &file]);
            assert_eq!(out.code, 0, "README rhai block {blocks}:\n{current}\n{}", out.stderr);
        } else if in_block {
            current.push_str(line);
            current.push('\n');
        }
    }
    assert!(blocks >= 2, "README has {blocks} rhai blocks");
}
