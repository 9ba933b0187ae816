use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let cfg = liveproc::config::Config::parse();
    match cfg.command.clone() {
        Some(liveproc::config::Command::Bench(args)) => liveproc::bench::run(args).await,
        Some(liveproc::config::Command::Check { fix, grace }) => {
            liveproc::check(&cfg, fix, std::time::Duration::from_secs(grace)).await
        }
        None => liveproc::serve(cfg).await,
    }
}
