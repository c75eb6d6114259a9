//! The supervisor console: the live list of conversations and the conversation pane, served as
//! HTML with live updates (see `handover_examples::console` and `docs/console.md`).
//!
//! ```text
//! cargo run --release -p handover-examples --example console -- \
//!     --listen 127.0.0.1:8080 (--data DIR | --database-url URL) [--demo] \
//!     [--tenant NAME]... [--supervisor ID:NAME]...
//! ```
//!
//! `--demo` runs a simulated contact center in the same process; sign in as Sam Rivera.
//! Without `--data` or `--database-url` the log is in a temporary directory, removed at exit.
//! `--supervisor ana:Ana` registers a supervisor of the default tenant (or of the first
//! `--tenant`) if there is none by that id. Ctrl-C or SIGTERM stops it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use handover::{AgentName, Config, Handover, HumanId, NewHuman, TenantId};
use handover_examples::console::{run_demo, serve, set_up_demo, ConsoleOptions};
use handover_examples::data_dir;

/// The command line.
struct Options {
    listen: SocketAddr,
    data: Option<PathBuf>,
    database_url: Option<String>,
    demo: bool,
    tenants: Vec<TenantId>,
    supervisors: Vec<(String, String)>,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        data: None,
        database_url: None,
        demo: false,
        tenants: Vec::new(),
        supervisors: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => {
                options.listen = value("--listen")?
                    .parse()
                    .context("--listen takes an address such as 127.0.0.1:8080")?;
            }
            "--data" => options.data = Some(value("--data")?.into()),
            "--database-url" => options.database_url = Some(value("--database-url")?),
            "--demo" => options.demo = true,
            "--tenant" => options.tenants.push(TenantId::new(value("--tenant")?)?),
            "--supervisor" => {
                let given = value("--supervisor")?;
                let (id, name) = given
                    .split_once(':')
                    .context("--supervisor takes ID:NAME")?;
                options.supervisors.push((id.to_owned(), name.to_owned()));
            }
            other => bail!(
                "unknown argument {other}; expected --listen ADDR, --data DIR, \
                 --database-url URL, --demo, --tenant NAME or --supervisor ID:NAME"
            ),
        }
    }
    if options.data.is_some() && options.database_url.is_some() {
        bail!("give --data or --database-url, not both");
    }
    Ok(options)
}

fn main() -> ExitCode {
    handover_examples::serve_main(options, run)
}

async fn run(options: Options) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let mut temp = None;
    let handover = match &options.database_url {
        Some(url) => Handover::start_on_postgres(
            url,
            handover::PostgresOptions::default(),
            handover::RuntimeSettings::default(),
        )
        .await
        .context("cannot start on PostgreSQL")?,
        None => {
            let (dir, guard) = data_dir(options.data.clone())?;
            temp = guard;
            Handover::start(Config::new(&dir)).await?
        }
    };
    let mut tenants = options.tenants.clone();
    if tenants.is_empty() {
        tenants.push(TenantId::default_tenant());
    }
    for (id, name) in &options.supervisors {
        let id = HumanId::new(id.as_str())?;
        if handover.human(&id).is_none() {
            let new =
                NewHuman::supervisor(id, AgentName::new(name.as_str())?).tenant(tenants[0].clone());
            handover.register_human(new).await?;
        }
    }
    let (stop_demo, demo_stopping) = tokio::sync::watch::channel(false);
    let demo = if options.demo {
        let cast = set_up_demo(&handover).await?;
        Some(tokio::spawn(run_demo(
            handover.clone(),
            Duration::from_millis(600),
            24,
            demo_stopping,
        )))
        .map(|task| (task, cast))
    } else {
        None
    };

    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let address = listener.local_addr()?;
    println!("console on http://{address}/ ; Ctrl-C stops");
    if !address.ip().is_loopback() {
        eprintln!(
            "warning: the console's sign-in has no password; put your own authentication in \
             front of it before others can reach {address}"
        );
    }
    if let Some((_, cast)) = &demo {
        println!(
            "demo running: sign in as {}",
            cast.supervisors
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        );
    }
    let options = ConsoleOptions::default().tenants(tenants);
    let served = serve(
        listener,
        handover.clone(),
        options,
        handover_examples::shutdown_signal(),
    )
    .await;
    let _ = stop_demo.send(true);
    if let Some((task, _)) = demo {
        let _ = task.await;
    }
    handover.shutdown().await;
    if let Some(temp) = temp {
        temp.close()
            .context("cannot remove the temporary data directory")?;
    }
    served.map_err(anyhow::Error::from)
}
