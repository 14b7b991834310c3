use anyhow::Result;
use clap::Parser;
use framewire::config::{Cli, Command, Config};

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
            let out = framewire::admin::swap_command(args.admin, args.token.as_deref(), &args.route, &args.file).await?;
            println!("{out}");
        }
        Command::Serve(args) => {
            let config = Config::from_args(&args)?;
            let mut server = framewire::Server::start(&config).await?;
            println!("framewire listening on http://{}", server.addr);
            println!("  live stream  http://{}/stream", server.addr);
            println!("  snapshot     http://{}/snapshot", server.addr);
            println!("  state        http://{}/api/state", server.addr);
            if let Some(admin) = server.admin {
                println!("  admin        http://{admin}/routes  (framewire swap ROUTE FILE)");
            }
            if let Some(media) = &config.media {
                println!("  media        http://{}/media/  ({})", server.addr, media.display());
            }
            tokio::select! {
                _ = server.wait() => {}
                _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
            }
        }
    }
    Ok(())
}
