//! Every command that reads or writes a log takes exactly one of `--data DIR` and
//! `--database-url URL` (or `DATABASE_URL`): neither, or both, is a usage error that says so,
//! and a database password never shows in the help.

use std::process::{Command, Output};

const URL: &str = "postgres://auditor:s3cret@db.invalid/handover";

/// Each command, with the arguments it needs besides where its log is.
const COMMANDS: [&[&str]; 7] = [
    &["audit", "export"],
    &[
        "audit",
        "timeline",
        "--conversation",
        "0190f1f0-0000-7000-8000-000000000001",
    ],
    &["audit", "verify"],
    &["audit", "stats"],
    &["audit", "conversations"],
    &["simulate"],
    &["bench"],
];

fn handover(args: &[&str], database_url: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_handover"));
    command.args(args).env_remove("DATABASE_URL");
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    command.output().expect("the handover binary runs")
}

fn with(command: &[&str], more: &[&str]) -> Vec<String> {
    command
        .iter()
        .chain(more)
        .map(|s| (*s).to_owned())
        .collect()
}

fn run(args: &[String], database_url: Option<&str>) -> (Option<i32>, String) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = handover(&args, database_url);
    assert!(output.stdout.is_empty(), "{args:?}");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn neither_data_nor_a_database_is_a_usage_error_naming_both() {
    for command in COMMANDS {
        let (code, stderr) = run(&with(command, &[]), None);
        assert_eq!(code, Some(2), "{command:?}: {stderr}");
        assert!(
            stderr.contains("the following required arguments were not provided")
                && stderr.contains("<--data <DIR>|--database-url <URL>>"),
            "{command:?}: {stderr}"
        );
    }
}

#[test]
fn both_data_and_a_database_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    for command in COMMANDS {
        let (code, stderr) = run(
            &with(command, &["--data", data, "--database-url", URL]),
            None,
        );
        assert_eq!(code, Some(2), "{command:?}: {stderr}");
        assert!(
            stderr
                .contains("the argument '--data <DIR>' cannot be used with '--database-url <URL>'"),
            "{command:?}: {stderr}"
        );
        assert!(!stderr.contains("s3cret"), "{command:?}: {stderr}");
        assert!(
            !stderr.contains("DATABASE_URL is set"),
            "{command:?}: {stderr}"
        );
    }
    // Nothing was written in the directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_database_url_in_the_environment_counts_and_the_error_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    for command in COMMANDS {
        let (code, stderr) = run(&with(command, &["--data", data]), Some(URL));
        assert_eq!(code, Some(2), "{command:?}: {stderr}");
        assert!(
            stderr.contains("cannot be used with")
                && stderr.contains("DATABASE_URL is set in the environment"),
            "{command:?}: {stderr}"
        );
        assert!(!stderr.contains("s3cret"), "{command:?}: {stderr}");
    }
}

#[test]
fn the_help_names_the_variable_but_never_its_value() {
    for command in COMMANDS {
        let output = handover(
            &with(command, &["--help"])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            Some(URL),
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{command:?}");
        assert!(
            stdout.contains("--database-url <URL>"),
            "{command:?}: {stdout}"
        );
        assert!(
            stdout.contains("[env: DATABASE_URL]"),
            "{command:?}: {stdout}"
        );
        assert!(!stdout.contains("s3cret"), "{command:?}: {stdout}");
    }
}

#[test]
fn durability_is_the_data_directory_s_alone() {
    for command in [&["simulate"][..], &["bench"]] {
        let (code, stderr) = run(
            &with(
                command,
                &["--database-url", URL, "--durability", "buffered"],
            ),
            None,
        );
        assert_eq!(code, Some(2), "{command:?}: {stderr}");
        assert!(
            stderr
                .contains("'--database-url <URL>' cannot be used with '--durability <DURABILITY>'"),
            "{command:?}: {stderr}"
        );
    }
}
