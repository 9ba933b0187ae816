//! The command line of DESIGN.md: every option also read from an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "liveproc",
    version,
    about = "Live streaming server with live processing"
)]
pub struct Config {
    /// HTTP listener (pages, API, assets, HLS).
    #[arg(long, env = "LIVEPROC_HTTP", default_value = "127.0.0.1:3000")]
    pub http: SocketAddr,
    /// RTMP listener.
    #[arg(long, env = "LIVEPROC_RTMP", default_value = "127.0.0.1:1935")]
    pub rtmp: SocketAddr,
    /// RTMPS listener (RTMP over TLS), off unless set; needs --rtmps-cert and --rtmps-key.
    #[arg(long, env = "LIVEPROC_RTMPS", requires_all = ["rtmps_cert", "rtmps_key"])]
    pub rtmps: Option<SocketAddr>,
    /// SRT listener (UDP; MPEG-TS with H.264 + AAC, stream id = the stream name), off unless set.
    #[arg(long, env = "LIVEPROC_SRT")]
    pub srt: Option<SocketAddr>,
    /// SRT receive latency (ms): how long the listener waits for lost packets to be resent;
    /// a caller that asks for more gets its own.
    #[arg(
        long = "srt-latency-ms",
        env = "LIVEPROC_SRT_LATENCY_MS",
        default_value_t = 120
    )]
    pub srt_latency_ms: u64,
    /// PEM certificate chain for RTMPS.
    #[arg(long = "rtmps-cert", env = "LIVEPROC_RTMPS_CERT")]
    pub rtmps_cert: Option<PathBuf>,
    /// PEM private key for RTMPS.
    #[arg(long = "rtmps-key", env = "LIVEPROC_RTMPS_KEY")]
    pub rtmps_key: Option<PathBuf>,
    /// Folder for assets and the embedded database.
    #[arg(long, env = "LIVEPROC_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// `sqlite://…` or `postgres://…`; default: sqlite://DATA/liveproc.db.
    #[arg(long = "database-url", env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Operator key: ensures organisation `default` with this admin key and live processing on.
    /// Without it, a key is generated and printed once, when no operator key exists yet.
    #[arg(long = "admin-key", env = "LIVEPROC_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Base of absolute URLs in API answers; default http:// + the HTTP address.
    #[arg(long = "public-url", env = "LIVEPROC_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Most RTMP connections open at once.
    #[arg(
        long = "rtmp-max-connections",
        env = "LIVEPROC_RTMP_MAX_CONNECTIONS",
        default_value_t = 4096
    )]
    pub rtmp_max_connections: usize,
    /// Most RTMP connections per IP address that are not publishing (yet).
    #[arg(
        long = "rtmp-max-waiting-per-ip",
        env = "LIVEPROC_RTMP_MAX_WAITING_PER_IP",
        default_value_t = 16
    )]
    pub rtmp_max_waiting_per_ip: usize,
    /// Requests with a wrong API key an address may make per minute; beyond, it gets 429
    /// until the minute is over.
    #[arg(
        long = "auth-failures-per-minute",
        env = "LIVEPROC_AUTH_FAILURES_PER_MINUTE",
        default_value_t = 20
    )]
    pub auth_failures_per_minute: u32,
    /// Most renditions (transcoding profiles) encoded at once; beyond, a profile shows "not
    /// running (capacity)". Default: twice the CPU cores.
    #[arg(long = "max-transcodes", env = "LIVEPROC_MAX_TRANSCODES")]
    pub max_transcodes: Option<usize>,
    /// Lets webhook endpoints be on loopback and private addresses (10/8, 172.16/12,
    /// 192.168/16, fc00::/7, 127/8, ::1). Link-local and cloud-metadata addresses stay refused.
    #[arg(
        long = "webhooks-allow-private",
        env = "LIVEPROC_WEBHOOKS_ALLOW_PRIVATE"
    )]
    pub webhooks_allow_private: bool,
    /// The first retry of a failed webhook delivery waits this long (ms); each next one
    /// twice as long, up to an hour, for 24 hours.
    #[arg(
        long = "webhook-retry-ms",
        env = "LIVEPROC_WEBHOOK_RETRY_MS",
        default_value_t = 5000
    )]
    pub webhook_retry_ms: u64,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Measures liveproc side by side with an equivalent ffmpeg pipeline (see BENCHMARKS.md).
    Bench(crate::bench::BenchArgs),
    /// Compares the database with the data folder: rows without files, files without rows.
    Check {
        /// Repair: forget rows of lost pictures and clips, mark lost recordings and replays
        /// failed, move files without a row to DATA/lost+found.
        #[arg(long)]
        fix: bool,
        /// Files younger than this many seconds are not judged: a running server writes a
        /// picture just before it lists it.
        #[arg(long, default_value_t = 300)]
        grace: u64,
    },
}

impl Config {
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}/liveproc.db", self.data.display()))
    }

    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.http))
            .trim_end_matches('/')
            .to_string()
    }

    /// RTMP base URL for answers: the public host with the RTMP port.
    pub fn rtmp_url(&self) -> String {
        format!("rtmp://{}:{}", self.public_host(), self.rtmp.port())
    }

    /// SRT base URL for answers (`srt://host:port`), when the SRT listener is on.
    pub fn srt_url(&self) -> Option<String> {
        let port = self.srt?.port();
        Some(format!("srt://{}:{port}", self.public_host()))
    }

    /// RTMPS base URL for answers, when the RTMPS listener is on.
    pub fn rtmps_url(&self) -> Option<String> {
        let port = self.rtmps?.port();
        Some(format!("rtmps://{}:{port}", self.public_host()))
    }

    /// The host of the public URL, without its port.
    fn public_host(&self) -> String {
        let public = self.public_url();
        let host = public
            .split("://")
            .nth(1)
            .unwrap_or("")
            .split('/')
            .next()
            .unwrap_or("");
        // Strip a port, keeping bracketed IPv6 hosts whole.
        let host = match host.rfind(':') {
            Some(i) if !host[i..].contains(']') => &host[..i],
            _ => host,
        };
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_contract() {
        let c = Config::parse_from(["liveproc"]);
        assert_eq!(c.http.to_string(), "127.0.0.1:3000");
        assert_eq!(c.rtmp.to_string(), "127.0.0.1:1935");
        assert_eq!(c.database_url(), "sqlite://./data/liveproc.db");
        assert_eq!(c.public_url(), "http://127.0.0.1:3000");
        assert_eq!(c.rtmp_url(), "rtmp://127.0.0.1:1935");
    }

    #[test]
    fn public_url_sets_rtmp_host() {
        let c = Config::parse_from([
            "liveproc",
            "--public-url",
            "https://live.example.com/",
            "--rtmp",
            "0.0.0.0:1936",
        ]);
        assert_eq!(c.public_url(), "https://live.example.com");
        assert_eq!(c.rtmp_url(), "rtmp://live.example.com:1936");
    }
}
