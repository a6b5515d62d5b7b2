//! The accept loop and each connection's bounds. axum's own `serve` sets no timer, so
//! hyper's header-read timeout never fires, and it caps nothing: a few hundred sockets that
//! trickle a request head, sit idle or never read their answer would hold the server until
//! it ran out of file descriptors. Here every connection has:
//!
//! - a slot among [`ConnectionLimits::max_connections`]; one over the cap is answered a 503
//!   problem and closed, so the refusal is an answer a client can act on, not a timeout;
//! - a head-read deadline, which hyper starts whenever it waits for a request's head — on a
//!   new connection and after each answer — so it also closes idle kept-alive connections;
//! - a write deadline ([`WriteDeadline`]) that closes a connection whose client stopped
//!   reading;
//! - the client's address, as axum's `ConnectInfo`, for the per-address rate limit.
//!
//! On shutdown the listener closes, idle connections close, in-flight requests get
//! [`ConnectionLimits::shutdown_timeout`] to finish, and whatever is still open then is
//! dropped, so a client that refuses to read cannot keep the server from exiting.

use crate::http::problem::{Problem, ProblemType, PROBLEM_JSON};
use axum::extract::connect_info::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// The bounds every connection is served within (see `ConnectionOptions` for the settings).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub write_timeout: Duration,
    pub shutdown_timeout: Duration,
}

/// Refusals being written at once; past this, a connection over the cap is closed without
/// an answer (a flood of them must not cost more than the connections it is refused).
const REFUSALS_IN_FLIGHT: usize = 64;

/// How long a refusal may take to write and to see the client's request off.
const REFUSAL_PATIENCE: Duration = Duration::from_secs(1);

/// How long to pause after an accept error other than a failed handshake (running out of
/// file descriptors, say), so the loop does not spin while the cause lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// File descriptors kept beside the connections: the database pool, SQLite's files, the
/// key file, the log.
const DESCRIPTORS_BESIDE_CONNECTIONS: u64 = 256;

/// Raises the process's soft open-file limit as far as the hard limit allows, so that
/// `max_connections` can be reached before accepting fails for want of descriptors (the
/// usual soft limit, 1024, is the default cap itself); says so when even that is short.
pub fn make_room_for(max_connections: usize) {
    let wanted = max_connections as u64 + DESCRIPTORS_BESIDE_CONNECTIONS;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(limit) if limit >= wanted => {}
        Ok(limit) => tracing::warn!(
            limit,
            max_connections,
            "the open-file limit is below what --max-connections needs; connections past \
             about limit - 256 will fail to be accepted (raise the hard limit, ulimit -Hn)"
        ),
        Err(error) => tracing::warn!(%error, "cannot read or raise the open-file limit"),
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains as the module's
/// doc says.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT));
    let refusal = Arc::new(refusal_response(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Finished connections are reaped here too: while connections keep arriving,
        // `biased` never gets to the `join_next` branch, and each finished task would keep
        // its allocation until joined.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_per_connection(&error) => continue,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection; pausing briefly");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(stream, &refusals, &refusal);
            continue;
        };
        // Answers are written whole; waiting to coalesce them only adds latency.
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(WriteDeadline::new(stream, limits.write_timeout));
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let connection = http.serve_connection(io, service);
        let stopping = stopping.clone();
        connections.spawn(async move {
            let _slot = slot;
            let _open = OpenConnection::count();
            tokio::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => log_connection_end(served),
                () = stopped(stopping) => {
                    connection.as_mut().graceful_shutdown();
                    log_connection_end(connection.await);
                }
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "the shutdown deadline passed; closing the connections still open"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Completes once the server stops (or the loop that would tell it is gone).
async fn stopped(mut stopping: watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// Errors that concern one connection only (the client gave up before it was accepted):
/// accepting goes straight on.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// A connection's end is routine (the client left, a timeout closed it): debug level only.
fn log_connection_end(served: Result<(), hyper::Error>) {
    if let Err(error) = served {
        tracing::debug!(%error, "connection closed");
    }
}

/// Keeps the `jobs_http_connections` gauge at the number of connections being served.
struct OpenConnection;

impl OpenConnection {
    fn count() -> Self {
        metrics::gauge!("jobs_http_connections").increment(1.0);
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!("jobs_http_connections").decrement(1.0);
    }
}

/// The whole answer to a connection over the cap: a 503 problem that closes it.
fn refusal_response(max_connections: usize) -> Vec<u8> {
    let problem = Problem::new(
        ProblemType::ServiceUnavailable,
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the server is serving as many connections as it allows ({max_connections}); \
             retry shortly"
        ),
    );
    let body = problem.to_body();
    let mut response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {PROBLEM_JSON}\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    response
}

/// Answers a connection over the cap with `refusal` and closes it, in a task of its own
/// bounded by [`REFUSAL_PATIENCE`]; when [`REFUSALS_IN_FLIGHT`] are already being written,
/// closes it at once.
fn refuse(mut stream: TcpStream, refusals: &Arc<Semaphore>, refusal: &Arc<Vec<u8>>) {
    metrics::counter!("jobs_http_connections_refused_total").increment(1);
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return;
    };
    let refusal = refusal.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let _ = tokio::time::timeout(REFUSAL_PATIENCE, async {
            stream.write_all(&refusal).await?;
            stream.shutdown().await?;
            // Closing with the request unread would reset the connection, and the client
            // could lose the answer before reading it: read until the client closes.
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            io::Result::Ok(())
        })
        .await;
    });
}

/// A stream whose writes fail with `TimedOut` once one has made no progress for `timeout`:
/// a client that stops reading fills its socket's buffers, and its connection is then
/// closed instead of held with its answer for as long as the client likes.
pub struct WriteDeadline<S> {
    inner: S,
    timeout: Duration,
    /// Armed while a write waits; reset by any progress.
    deadline: Pin<Box<Sleep>>,
    armed: bool,
}

impl<S> WriteDeadline<S> {
    pub fn new(inner: S, timeout: Duration) -> Self {
        WriteDeadline {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            armed: false,
        }
    }

    /// Passes a finished write through (disarming the deadline); for a waiting one, arms
    /// the deadline if needed and fails once it has passed.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                self.armed = false;
                Poll::Ready(result)
            }
            Poll::Pending => {
                if !self.armed {
                    self.armed = true;
                    self.deadline.as_mut().reset(Instant::now() + self.timeout);
                }
                ready!(self.deadline.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client stopped reading the answer",
                )))
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_is_raised_to_fit_the_connections() {
        let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
        let connections = 2000.min(hard.saturating_sub(DESCRIPTORS_BESIDE_CONNECTIONS)) as usize;
        make_room_for(connections);
        let (soft, _) = rlimit::Resource::NOFILE.get().unwrap();
        assert!(
            soft >= connections as u64 + DESCRIPTORS_BESIDE_CONNECTIONS,
            "{soft}"
        );
    }

    #[tokio::test]
    async fn a_write_the_reader_never_takes_fails_after_the_timeout() {
        // A pipe with a small buffer that nobody reads: the second write must wait.
        let (writer, _reader) = tokio::io::duplex(16);
        let mut stream = WriteDeadline::new(writer, Duration::from_millis(50));
        stream.write_all(&[0; 16]).await.unwrap();
        let started = std::time::Instant::now();
        let error = stream.write_all(&[0; 16]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_slow_reader_that_keeps_reading_is_not_cut_off() {
        let (writer, mut reader) = tokio::io::duplex(16);
        let mut stream = WriteDeadline::new(writer, Duration::from_millis(100));
        let reading = tokio::spawn(async move {
            let mut total = 0;
            let mut chunk = [0u8; 8];
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                match reader.read(&mut chunk).await.unwrap() {
                    0 => return total,
                    n => total += n,
                }
            }
        });
        // 256 bytes at 8 bytes per 20 ms take far longer than the timeout in all, but
        // every wait for room is short.
        stream.write_all(&[7; 256]).await.unwrap();
        drop(stream);
        assert_eq!(reading.await.unwrap(), 256);
    }
}
