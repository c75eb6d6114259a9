//! A real, throwaway PostgreSQL cluster per test, from the server binaries of Debian's
//! `postgresql` package.
//!
//! [`PgCluster::start`] gives each test its own server on a free port of 127.0.0.1, with trust
//! authentication for the `postgres` superuser and `fsync` on, so that stopping it abruptly
//! ([`PgCluster::stop_immediate`], or a `SIGKILL` to [`PgCluster::pid`]) and starting it again
//! ([`PgCluster::start_again`]) is a real crash and recovery. Dropping the cluster stops the
//! server and deletes its files.
//!
//! The binaries are found in `HANDOVER_PG_BINDIR`, else in the newest
//! `/usr/lib/postgresql/*/bin`, else on `PATH`; without them every start panics with what to
//! install. `initdb` runs once per test process, into a template that each cluster copies. Run
//! as root, the server runs as the `postgres` system user (PostgreSQL refuses root), so the
//! temporary directory (`TMPDIR`, else `/tmp`) must be one that user can reach. What a killed
//! test process leaves there, servers included, the next test process's first start removes.
//!
//! ```no_run
//! use handover_testkit::PgCluster;
//!
//! let cluster = PgCluster::start();
//! let url = cluster.create_database("journal");
//! // ... connect to `url`, write, then crash the server and bring it back:
//! cluster.stop_immediate();
//! cluster.start_again();
//! ```

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use rustix::process::{kill_process, Pid, Signal};
use tempfile::TempDir;

/// What a start says when no server binaries are found.
const NOT_FOUND: &str = "PostgreSQL server binaries not found: install Debian's `postgresql` \
    package (apt-get install postgresql), or set HANDOVER_PG_BINDIR";

/// The names of this module's directories under the temporary directory begin with this, then
/// the owning process's id, so that a later process can sweep what a killed one left.
const DIR_PREFIX: &str = "handover-pg-";

/// Attempts at a start whose port another process took between our probe and the bind.
const PORT_ATTEMPTS: usize = 5;

/// Lines of the server log quoted in a panic message.
const LOG_TAIL_LINES: usize = 40;

/// A running PostgreSQL server of its own, in a temporary directory, for one test.
///
/// Several may run at once, from parallel tests. Every method panics, with the server log's
/// tail, when PostgreSQL does not do what it asks: this is test support, and a failure there
/// is the test's failure.
#[derive(Debug)]
pub struct PgCluster {
    /// The cluster's files: `data` (the data directory) and `log` (the server log).
    dir: TempDir,
    port: u16,
}

impl PgCluster {
    /// Starts a new, empty cluster (databases `postgres`, `template0`, `template1`) and waits
    /// until it accepts connections.
    ///
    /// Panics if the server binaries are missing (saying what to install), or if the server
    /// does not start (with its log's tail).
    pub fn start() -> PgCluster {
        let setup = setup();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
            .tempdir()
            .expect("a temporary directory for a PostgreSQL cluster");
        setup.hand_over(dir.path());
        let copy = Command::new("cp")
            .arg("-a")
            .arg(setup.template.join("data"))
            .arg(dir.path().join("data"))
            .output();
        check("copying the template cluster (cp -a)", copy);

        for attempt in 1..=PORT_ATTEMPTS {
            let port = reserve_port();
            match launch(dir.path(), port) {
                Ok(()) => return PgCluster { dir, port },
                // The server exited on the failed bind: try another port.
                Err(failure) if failure.port_taken && attempt < PORT_ATTEMPTS => {
                    release_port(port);
                }
                // Built only to panic: unwinding drops it, which cleans up.
                Err(failure) => PgCluster { dir, port }.fail("start", &failure.output),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// A libpq-style URL of the cluster's `postgres` database, as the `postgres` superuser
    /// (no password: the cluster trusts local TCP connections).
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// The TCP port on 127.0.0.1 the server listens on; it keeps it across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates the database `name` and returns its URL (see [`PgCluster::url`]).
    ///
    /// `name` is letters, digits and underscores, at most 63 bytes (PostgreSQL's limit), so
    /// that it needs no quoting in SQL or in the URL. Works from inside a tokio runtime as
    /// well as outside one: the connection runs on a thread of its own. Panics if the name is
    /// not valid or the database cannot be created (it exists already, or the server is down).
    pub fn create_database(&self, name: &str) -> String {
        assert!(
            !name.is_empty()
                && name.len() <= 63
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "create_database: {name:?} is not a plain database name (letters, digits and \
             underscores, 1 to 63 bytes)"
        );
        let url = self.url();
        let sql = format!("CREATE DATABASE \"{name}\"");
        // A runtime cannot be started, nor blocked on, from a thread that runs one already:
        // a fresh thread works whether or not the caller is inside tokio.
        let outcome = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("a tokio runtime for CREATE DATABASE: {e}"))?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| format!("connecting to {url}: {e}"))?;
                let connection = tokio::spawn(connection);
                client
                    .batch_execute(&sql)
                    .await
                    .map_err(|e| format!("{sql}: {e}"))?;
                drop(client);
                let _ = connection.await;
                Ok(())
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the CREATE DATABASE thread panicked".to_owned()));
        if let Err(message) = outcome {
            panic!(
                "create_database({name:?}) failed: {message}\n{}",
                self.log_tail()
            );
        }
        self.database_url(name)
    }

    /// Stops the server the way a crash would: `pg_ctl stop -m immediate`, which ends every
    /// server process without a checkpoint, so the next start runs crash recovery from the
    /// write-ahead log. Returns once the server is gone; its connections see errors.
    ///
    /// The operating system's page cache survives, as it would not a power cut of the machine:
    /// what this shows is that the server recovers everything it acknowledged from its log.
    ///
    /// Panics if the server is not running.
    pub fn stop_immediate(&self) {
        self.pg_ctl_stop("immediate");
    }

    /// Stops the server cleanly (`pg_ctl stop -m fast`: open transactions roll back, then a
    /// checkpoint). Panics if the server is not running.
    pub fn stop(&self) {
        self.pg_ctl_stop("fast");
    }

    /// Starts the stopped (or crashed) server again on the same port and data, and waits until
    /// it accepts connections, crash recovery included.
    ///
    /// After a `SIGKILL` to the postmaster ([`PgCluster::pid`]), the backends it leaves behind
    /// notice its death and exit; this waits for them (PostgreSQL refuses to start while they
    /// hold its shared memory). Panics if the server does not start, with its log's tail.
    pub fn start_again(&self) {
        // A killed postmaster takes a moment to die, and its orphaned backends to notice and
        // exit; until then PostgreSQL refuses to start. A bounded retry covers that without
        // assuming how long it takes on a loaded machine.
        let mut attempts = 0;
        loop {
            attempts += 1;
            self.forget_dead_postmaster();
            match launch(self.dir.path(), self.port) {
                Ok(()) => return,
                Err(failure) if failure.not_yet_exited && attempts < 100 => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(failure) => self.fail("start again", &failure.output),
            }
        }
    }

    /// The process id of the postmaster, from `postmaster.pid` in the data directory, for
    /// tests that kill (`SIGKILL`) or freeze (`SIGSTOP`) the server. `None` when no server has
    /// left a pid file (it is stopped cleanly or immediately).
    ///
    /// A killed postmaster leaves its pid file behind, and so a stale pid here; a frozen one
    /// must be sent `SIGCONT` before [`PgCluster::stop`] or [`PgCluster::stop_immediate`],
    /// which wait for it (dropping the cluster does that itself).
    pub fn pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    fn database_url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn pg_ctl_stop(&self, mode: &str) {
        let output = setup()
            .command("pg_ctl", self.dir.path())
            .arg("stop")
            .arg("-D")
            .arg(self.data())
            .args(["-m", mode, "-w", "-t", "60"])
            .output();
        if !matches!(&output, Ok(o) if o.status.success()) {
            self.fail(&format!("stop ({mode})"), &describe(output));
        }
    }

    /// Removes the pid file a killed postmaster left, once it is no live PostgreSQL process:
    /// PostgreSQL takes a zombie not yet reaped, or another process given the same number
    /// since, for a server still holding the data directory.
    fn forget_dead_postmaster(&self) {
        if let Some(pid) = self.pid() {
            if !is_postgres(pid) {
                let _ = fs::remove_file(self.data().join("postmaster.pid"));
            }
        }
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
        format!(
            "--- server log {} (last {} lines) ---\n{}",
            self.log().display(),
            tail.len(),
            tail.join("\n")
        )
    }

    fn fail(&self, what: &str, output: &str) -> ! {
        panic!(
            "PostgreSQL cluster on port {}: {what} failed\n{output}\n{}",
            self.port,
            self.log_tail()
        )
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Never panic here: this also runs while a failing test unwinds.
        if let Some(pid) = self.pid() {
            // A frozen postmaster would not act on the stop signal.
            if is_postgres(pid) {
                signal(pid, Signal::CONT);
            }
            let _ = setup()
                .command("pg_ctl", self.dir.path())
                .arg("stop")
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "-t", "30"])
                .output();
            if let Some(pid) = self.pid() {
                // The server ignored the stop, or died without cleaning up (SIGKILL).
                if is_postgres(pid) {
                    signal(pid, Signal::KILL);
                }
                remove_shared_memory(&self.data());
            }
        }
        release_port(self.port);
    }
}

/// `pg_ctl start` of the cluster in `dir` on `port`; on failure, what the log says about why.
fn launch(dir: &Path, port: u16) -> Result<(), LaunchFailure> {
    let log = dir.join("log");
    let log_before = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories='' -c fsync=on \
         -c synchronous_commit=on -c max_connections=200 -c shared_buffers=32MB",
        port
    );
    let output = setup()
        .command("pg_ctl", dir)
        .arg("start")
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-l")
        .arg(&log)
        .args(["-w", "-t", "60", "-o", &options])
        .output();
    match output {
        Ok(output) if output.status.success() => Ok(()),
        output => {
            // Only what this attempt wrote: earlier starts may have failed differently.
            let written = fs::read(&log).unwrap_or_default();
            let start = usize::try_from(log_before).map_or(0, |n| n.min(written.len()));
            let this_attempt = String::from_utf8_lossy(&written[start..]);
            Err(LaunchFailure {
                port_taken: this_attempt.contains("Address already in use")
                    || this_attempt.contains("could not create any TCP/IP sockets"),
                not_yet_exited: this_attempt.contains("is still in use")
                    || this_attempt.contains("lock file \"postmaster.pid\" already exists"),
                output: describe(output),
            })
        }
    }
}

/// Why a `pg_ctl start` failed.
struct LaunchFailure {
    /// Another process bound the port first.
    port_taken: bool,
    /// A killed postmaster, or its backends, had not exited yet: its pid file or its shared
    /// memory was still in use.
    not_yet_exited: bool,
    /// What `pg_ctl` printed.
    output: String,
}

/// What a test process found once: the binaries, who runs them, and the template cluster.
#[derive(Debug)]
struct Setup {
    bindir: PathBuf,
    /// The process is root, which PostgreSQL refuses: run its programs as `postgres`.
    as_postgres: bool,
    /// Holds `data`, a freshly initialised data directory that clusters copy.
    template: PathBuf,
}

impl Setup {
    /// A command running `program` from the server binaries, as the user that may run them.
    fn command(&self, program: &str, cwd: &Path) -> Command {
        server_command(&self.bindir, self.as_postgres, program, cwd)
    }

    /// Gives `dir` (not its contents) to the user the server runs as.
    fn hand_over(&self, dir: &Path) {
        if self.as_postgres {
            let chown = Command::new("chown").arg("postgres:").arg(dir).output();
            check(&format!("chown postgres: {}", dir.display()), chown);
        }
    }
}

/// A command running `program` from `bindir`, as `postgres` if `as_postgres`.
fn server_command(bindir: &Path, as_postgres: bool, program: &str, cwd: &Path) -> Command {
    let mut command = if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]);
        command.arg(bindir.join(program));
        command
    } else {
        Command::new(bindir.join(program))
    };
    // The caller's directory may be closed to `postgres`; messages in English, so that
    // failures can be told apart by their text.
    command.current_dir(cwd).env("LC_ALL", "C");
    command
}

static SETUP: OnceLock<Result<Setup, String>> = OnceLock::new();

fn setup() -> &'static Setup {
    match SETUP.get_or_init(prepare) {
        Ok(setup) => setup,
        Err(message) => panic!("{message}"),
    }
}

fn prepare() -> Result<Setup, String> {
    let bindir = find_bindir(
        std::env::var_os("HANDOVER_PG_BINDIR"),
        Path::new("/usr/lib/postgresql"),
        std::env::var_os("PATH"),
    )?;
    let as_postgres = rustix::process::geteuid().is_root();
    if as_postgres {
        let user = Command::new("id").args(["-u", "postgres"]).output();
        if !matches!(&user, Ok(o) if o.status.success()) {
            return Err(
                "running as root, and PostgreSQL refuses to run as root, but there is \
                 no `postgres` system user to run it as: install Debian's `postgresql` package \
                 (it creates the user), or run the tests as another user"
                    .to_owned(),
            );
        }
    }
    let temp = std::env::temp_dir();
    sweep(&temp, &bindir, as_postgres);

    let template = tempfile::Builder::new()
        .prefix(&format!("{DIR_PREFIX}template-{}-", std::process::id()))
        .tempdir_in(&temp)
        .map_err(|e| format!("a template directory in {}: {e}", temp.display()))?
        // Kept for the whole process; the next process's sweep removes it.
        .keep();
    let setup = Setup {
        bindir,
        as_postgres,
        template,
    };
    setup.hand_over(&setup.template);
    if as_postgres {
        let reachable = Command::new("runuser")
            .args(["-u", "postgres", "--", "test", "-w"])
            .arg(&setup.template)
            .status();
        if !matches!(reachable, Ok(s) if s.success()) {
            return Err(format!(
                "the `postgres` user cannot write to {}: set TMPDIR to a directory whose \
                 parents it can traverse (such as /tmp)",
                setup.template.display()
            ));
        }
    }
    // -N: no fsync of the template; the servers themselves run with fsync on.
    let output = setup
        .command("initdb", &setup.template)
        .arg("-D")
        .arg(setup.template.join("data"))
        .args([
            "--auth=trust",
            "--username=postgres",
            "--encoding=UTF8",
            "--locale=C",
            "-N",
        ])
        .output();
    if !matches!(&output, Ok(o) if o.status.success()) {
        return Err(format!(
            "initdb {} failed\n{}",
            setup.template.join("data").display(),
            describe(output)
        ));
    }
    Ok(setup)
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: `bindir_env` if given, else the
/// newest version under `versions_root` (Debian's `/usr/lib/postgresql/<version>/bin`), else
/// the first such directory on `path`.
fn find_bindir(
    bindir_env: Option<OsString>,
    versions_root: &Path,
    path: Option<OsString>,
) -> Result<PathBuf, String> {
    let complete = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|program| dir.join(program).is_file())
    };
    if let Some(dir) = bindir_env.filter(|dir| !dir.is_empty()) {
        let dir = PathBuf::from(dir);
        return if complete(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "HANDOVER_PG_BINDIR={} has no initdb, pg_ctl and postgres. {NOT_FOUND}",
                dir.display()
            ))
        };
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir(versions_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            // "15", or "9.6" before PostgreSQL 10: compare numerically, not as text.
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| complete(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    path.iter()
        .flat_map(std::env::split_paths)
        .find(|dir| complete(dir))
        .ok_or_else(|| NOT_FOUND.to_owned())
}

/// Removes what killed test processes left under `temp`: their templates, and their clusters,
/// stopping servers still running there.
fn sweep(temp: &Path, bindir: &Path, as_postgres: bool) {
    let Ok(entries) = fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let rest = rest.strip_prefix("template-").unwrap_or(rest);
        let Some(Ok(owner)) = rest.split('-').next().map(str::parse::<u32>) else {
            continue;
        };
        if owner == std::process::id() || Path::new("/proc").join(owner.to_string()).exists() {
            continue;
        }
        let dir = entry.path();
        let data = dir.join("data");
        if let Some(pid) = fs::read_to_string(data.join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next()?.trim().parse::<u32>().ok())
        {
            if is_postgres(pid) {
                signal(pid, Signal::CONT);
                let stop = server_command(bindir, as_postgres, "pg_ctl", &dir)
                    .arg("stop")
                    .arg("-D")
                    .arg(&data)
                    .args(["-m", "immediate", "-w", "-t", "30"])
                    .output();
                if !matches!(stop, Ok(o) if o.status.success()) && is_postgres(pid) {
                    signal(pid, Signal::KILL);
                }
            }
            remove_shared_memory(&data);
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

/// Ports of this process's clusters, stopped ones included, so that a new cluster does not
/// take the port a stopped one will start on again.
static PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

fn reserve_port() -> u16 {
    let mut ports = PORTS.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        // The kernel picks a free port; the listener closes before the server binds it, so
        // another process may take it in between (the start then tries another).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free TCP port on 127.0.0.1")
            .port();
        if ports.insert(port) {
            return port;
        }
    }
}

fn release_port(port: u16) {
    PORTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&port);
}

/// The state letter of process `pid` (`R`, `S`, `Z`...), `None` if there is no such process.
fn process_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may hold spaces or parentheses: the state follows the
    // last closing one.
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Whether `pid` is a live (not zombie) PostgreSQL process, so that a stale pid file, whose
/// number the system may have given to another process since, never leads to killing that.
fn is_postgres(pid: u32) -> bool {
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    comm.trim() == "postgres" && !matches!(process_state(pid), None | Some('Z'))
}

fn signal(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, signal);
    }
}

/// Removes the System V shared memory segment that a postmaster which died without cleaning
/// up (SIGKILL) leaves, named on the pid file's seventh line (`key id`): its next start would
/// remove it, but a dropped cluster has no next start.
fn remove_shared_memory(data: &Path) {
    let Ok(text) = fs::read_to_string(data.join("postmaster.pid")) else {
        return;
    };
    let Some(id) = text
        .lines()
        .nth(6)
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|id| id.parse::<u64>().ok())
    else {
        return;
    };
    let _ = Command::new("ipcrm").args(["-m", &id.to_string()]).output();
}

/// Panics with `what` and the command's output unless it succeeded.
fn check(what: &str, output: std::io::Result<Output>) {
    if !matches!(&output, Ok(o) if o.status.success()) {
        panic!("{what} failed\n{}", describe(output));
    }
}

/// A command's exit status and output, or why it did not run.
fn describe(output: std::io::Result<Output>) -> String {
    match output {
        Ok(output) => format!(
            "{}\n--- stdout ---\n{}--- stderr ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(e) => format!("could not run it: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_binaries_anywhere_is_an_error_saying_what_to_install() {
        let empty = tempfile::tempdir().expect("a temporary directory");
        let error = find_bindir(None, empty.path(), Some(empty.path().into()))
            .expect_err("nothing to find");
        assert_eq!(error, NOT_FOUND);
    }

    #[test]
    fn a_bindir_without_the_programs_is_an_error_naming_it() {
        let empty = tempfile::tempdir().expect("a temporary directory");
        let error = find_bindir(Some(empty.path().into()), empty.path(), None)
            .expect_err("nothing to find");
        assert!(error.contains("HANDOVER_PG_BINDIR="), "{error}");
        assert!(error.ends_with(NOT_FOUND), "{error}");
    }

    #[test]
    fn the_newest_version_wins_numerically() {
        let root = tempfile::tempdir().expect("a temporary directory");
        for version in ["9.6", "15", "13", "16"] {
            let bin = root.path().join(version).join("bin");
            fs::create_dir_all(&bin).expect("a bin directory");
            // 16 lacks the server: a client-only install does not count.
            let programs: &[&str] = if version == "16" {
                &["initdb"]
            } else {
                &["initdb", "pg_ctl", "postgres"]
            };
            for program in programs {
                fs::write(bin.join(program), "").expect("a program file");
            }
        }
        let found = find_bindir(None, root.path(), None).expect("a version");
        assert_eq!(found, root.path().join("15").join("bin"));
    }
}
