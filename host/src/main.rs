use anyhow::Result;
use clap::Parser;
use std::io::Write;
use framewire::config::{Cli, Command, Config};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Cameras => {
            for line in framewire::camera::list_devices()? {
                println!("{line}");
            }
        }
        Command::Swap(args) => {
            let dir = framewire::admin::admin_dir(None);
            let admin = framewire::admin::find(args.listen, args.admin.as_deref(), args.token, &dir)?;
            let out = framewire::admin::swap_command(&admin, &args.route, &args.file).await?;
            println!("{out}");
        }
        Command::HashPassword => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(!password.is_empty(), "no password on standard input");
            println!("{}", framewire::auth::hash_password(password)?);
        }
        Command::Share(args) => {
            let serve = framewire::config::ServeArgs { config: args.config.clone(), cache_dir: args.cache_dir.clone(), no_auth: true, ..Default::default() };
            let config = Config::from_args(&serve)?;
            let base = args.base.clone().unwrap_or_else(|| {
                let scheme = if config.tls.is_some() { "https" } else { "http" };
                format!("{scheme}://{}", config.listen)
            });
            println!("{}", framewire::auth::share_link_for(&config, base.trim_end_matches('/'), &args.path, args.ttl)?);
        }
        Command::Check(args) => match framewire::check::check(&args.file, args.media.as_deref()).await {
            Ok(report) => println!("{}: ok\n{report}", args.file.display()),
            // The reason is the whole answer: no backtrace, even with RUST_BACKTRACE.
            Err(e) => {
                eprintln!("refused: {e:#}");
                std::process::exit(1);
            }
        },
        Command::Serve(args) => {
            let config = Config::from_args(&args)?;
            if config.no_auth && config.users.is_empty() && !config.listen.ip().is_loopback() {
                tracing::warn!("serving {} with no accounts (--no-auth): anyone who reaches it sees every camera and the media folder", config.listen);
            }
            let mut server = framewire::Server::start(&config).await?;
            let base = format!("{}://{}", server.scheme(), server.addr);
            let mut urls = format!("framewire listening on {base}\n");
            urls += &format!("  page         {base}/\n");
            urls += &format!("  live stream  {base}/stream\n");
            urls += &format!("  snapshot     {base}/snapshot\n");
            urls += &format!("  state        {base}/api/state\n");
            if let Some(tls) = &server.tls {
                urls += &format!("  TLS          HTTP/2 and HTTP/1.1, certificate {}\n", tls.cert_file.display());
                urls += &format!("               SHA-256 {}\n", tls.fingerprint);
            }
            if let Some(admin) = &server.admin {
                urls += &format!("  admin        {}  (framewire swap ROUTE FILE)\n", admin.endpoint);
                if let Some(file) = &admin.token_file {
                    urls += &format!("               its bearer token is in {}\n", file.display());
                }
            }
            if let Some(media) = &config.media {
                urls += &format!("  media        {base}/media/  ({})\n", media.display());
            }
            // Whoever started us may stop reading stdout (a closed pipe):
            // that must not bring the server down.
            let mut stdout = std::io::stdout();
            let _ = stdout.write_all(urls.as_bytes()).and_then(|()| stdout.flush());
            framewire::systemd::ready(&format!("serving {base}"));
            framewire::systemd::start_watchdog(server.app.cameras.feeds.clone());
            let grace = config.shutdown_timeout;
            tokio::select! {
                _ = server.wait() => {}
                signal = stop_signal() => {
                    framewire::systemd::stopping();
                    tracing::info!("{signal}: shutting down; responses in flight have {}s to finish", grace.as_secs());
                    server.shutdown(grace).await;
                    tracing::info!("stopped");
                }
            }
        }
    }
    Ok(())
}

/// SIGTERM (systemd, docker, kill) or SIGINT (Ctrl-C).
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}
