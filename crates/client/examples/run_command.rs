//! Run a command to its end and print what it wrote and how it ended, on
//! the server named by `EXECD_URL` (token: `EXECD_TOKEN` or the default
//! token file), or on this machine when `EXECD_URL` is not set.
//!
//! `cargo run -p execd-client --example run_command -- uname -a`

use execd_client::{EnvError, EnvironmentManager};

#[tokio::main]
async fn main() -> Result<(), EnvError> {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() {
        argv = vec![
            "bash".into(),
            "-c".into(),
            "echo hello; echo oops >&2; exit 3".into(),
        ];
    }
    let env = EnvironmentManager::from_env().environment().await?;
    let output = env
        .command(argv[0].clone())
        .args(&argv[1..])
        .cwd("/tmp")
        .env("GREETING", "hi")
        .output()
        .await?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    println!("-> {}", output.status);
    Ok(())
}
