//! Running the app: bind, serve, and shut down gracefully (stop accepting, let the engines
//! finish what they have, wait for in-flight responses, stop the engine threads).

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::app::app;
use crate::error::ServeError;
use crate::state::AppState;

pub async fn bind(host: &str, port: u16) -> Result<TcpListener, ServeError> {
    let addr = format!("{host}:{port}");
    TcpListener::bind(&addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Serves until `shutdown` resolves, then drains: the listener closes, the engines take no
/// new requests, in-flight requests (streams included) run to their end, then the engine
/// threads are joined.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let router = app(state.clone());
    let st = state.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        st.begin_shutdown();
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(signal)
        .await?;
    let engines = state.models.engines();
    let joined = tokio::task::spawn_blocking(move || {
        for e in engines {
            e.shutdown_and_join();
        }
    });
    let _ = joined.await;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
