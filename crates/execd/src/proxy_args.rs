//! The `execd serve` flags that bound each network-policied tree's proxy
//! (connections open at once, bytes per connection, idle time): each sets
//! one field of [`NetworkLimits`], and the proxy's refusal names it.

use std::time::Duration;

use clap::Args;
use execd_policy::network::NetworkLimits;

fn defaults() -> NetworkLimits {
    NetworkLimits::default()
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Network policy proxy limits")]
pub struct ProxyArgs {
    /// Connections one process tree under a `networkPolicy` has open
    /// through its proxy at once; more are answered 503.
    #[arg(long, default_value_t = defaults().max_connections as u64, value_parser = clap::value_parser!(u64).range(1..))]
    max_proxy_connections: u64,
    /// Bytes one proxied connection may carry (both directions together)
    /// before the proxy closes it; 0: no cap.
    #[arg(long, default_value_t = 0)]
    max_proxy_bytes: u64,
    /// Milliseconds a proxied connection may sit with nothing moving
    /// either way (or without a complete request) before it is closed.
    #[arg(long, value_name = "MS", default_value_t = defaults().idle_timeout.as_millis() as u64, value_parser = clap::value_parser!(u64).range(1..))]
    proxy_idle_timeout_ms: u64,
}

impl ProxyArgs {
    pub fn limits(&self) -> NetworkLimits {
        NetworkLimits {
            max_connections: usize::try_from(self.max_proxy_connections).unwrap_or(usize::MAX),
            max_bytes_per_connection: (self.max_proxy_bytes > 0).then_some(self.max_proxy_bytes),
            idle_timeout: Duration::from_millis(self.proxy_idle_timeout_ms),
            ..defaults()
        }
    }
}
