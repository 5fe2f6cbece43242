//! Copy a local file into the environment and read it back, in bounded
//! pieces (files larger than memory stream through): on `EXECD_URL`'s
//! server or this machine.
//!
//! `cargo run -p execd-client --example copy_file -- ./Cargo.toml /tmp/copied.toml`

use execd_client::{read_file_to, write_file_from, EnvError, EnvironmentManager};

#[tokio::main]
async fn main() -> Result<(), EnvError> {
    let mut args = std::env::args().skip(1);
    let (Some(source), Some(destination)) = (args.next(), args.next()) else {
        eprintln!("usage: copy_file LOCAL_SOURCE ABSOLUTE_DESTINATION");
        std::process::exit(2);
    };
    let env = EnvironmentManager::from_env().environment().await?;
    let failed = |err: std::io::Error| EnvError::Failed(format!("{source}: {err}"));
    let mut file = tokio::fs::File::open(&source).await.map_err(failed)?;
    let sent = write_file_from(env.fs.as_ref(), &destination, &mut file, |_| {}).await?;
    let mut back = Vec::new();
    let received = read_file_to(env.fs.as_ref(), &destination, &mut back, |_| {}).await?;
    let local = tokio::fs::read(&source).await.map_err(failed)?;
    assert_eq!(back, local, "the copy differs from the source");
    let metadata = env.fs.metadata(&destination).await?;
    println!(
        "copied {sent} bytes to {destination} ({} bytes there), read {received} back",
        metadata.size
    );
    Ok(())
}
