//! The shutdown signals every long-running command watches: the first SIGINT or SIGTERM asks
//! to stop (what is in flight finishes and is recorded), a second one aborts. Here, below
//! both `cli` and `daemon`, so neither imports the other for it.

/// Resolves on the first SIGINT or SIGTERM, naming it.
pub async fn shutdown_signal() -> &'static str {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        () = term => "SIGTERM",
    }
}
