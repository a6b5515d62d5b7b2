//! A TCP proxy between a test server and PostgreSQL, for outages on demand: [`TcpProxy::cut`]
//! closes every connection and refuses new ones until [`TcpProxy::restore`], as a network
//! partition or a database restart would; [`TcpProxy::lose_next_commit`] lets the next
//! `COMMIT` reach the database but never its answer, so the server cannot know whether its
//! transaction committed (it did).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpProxy {
    pub address: SocketAddr,
    state: Arc<ProxyState>,
    accepting: tokio::task::JoinHandle<()>,
}

struct ProxyState {
    upstream: SocketAddr,
    cut: AtomicBool,
    lose_commit: AtomicBool,
    /// Bumped on every cut: each connection closes when it changes.
    cuts: watch::Sender<u64>,
}

impl TcpProxy {
    pub async fn start(upstream: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a proxy port");
        let address = listener.local_addr().expect("the proxy's address");
        let state = Arc::new(ProxyState {
            upstream,
            cut: AtomicBool::new(false),
            lose_commit: AtomicBool::new(false),
            cuts: watch::channel(0).0,
        });
        let accepting = tokio::spawn({
            let state = state.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if state.cut.load(Ordering::SeqCst) {
                        drop(client); // refused: the client sees its connection closed
                        continue;
                    }
                    tokio::spawn(relay(client, state.clone()));
                }
            }
        });
        TcpProxy {
            address,
            state,
            accepting,
        }
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        self.state.cuts.send_modify(|cuts| *cuts += 1);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }

    /// The next `COMMIT` sent through the proxy reaches the database, but its connection is
    /// closed before the answer gets back.
    pub fn lose_next_commit(&self) {
        self.state.lose_commit.store(true, Ordering::SeqCst);
    }

    /// Whether a `COMMIT` was lost since [`Self::lose_next_commit`].
    pub fn commit_was_lost(&self) -> bool {
        !self.state.lose_commit.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}

/// Relays one connection both ways until either side closes or the proxy cuts it.
async fn relay(client: TcpStream, state: Arc<ProxyState>) {
    let Ok(server) = TcpStream::connect(state.upstream).await else {
        return;
    };
    let mut cuts = state.cuts.subscribe();
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let answers_lost = AtomicBool::new(false);
    let answered = tokio::sync::Notify::new();
    let upstream = async {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let read = from_client.read(&mut buffer).await.unwrap_or(0);
            if read == 0 {
                return;
            }
            let chunk = &buffer[..read];
            let losing = is_commit(chunk)
                && state
                    .lose_commit
                    .compare_exchange(true, false, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok();
            if losing {
                answers_lost.store(true, Ordering::SeqCst);
            }
            if to_server.write_all(chunk).await.is_err() {
                return;
            }
            if losing {
                // The database has committed once it answers; then the connection goes,
                // the answer with it.
                let _ = tokio::time::timeout(Duration::from_secs(10), answered.notified()).await;
                return;
            }
        }
    };
    let downstream = async {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let read = from_server.read(&mut buffer).await.unwrap_or(0);
            if read == 0 {
                return;
            }
            if answers_lost.load(Ordering::SeqCst) {
                answered.notify_one();
                continue;
            }
            if to_client.write_all(&buffer[..read]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
        _ = cuts.changed() => {}
    }
}

/// Whether a chunk of the client's stream holds a simple-protocol `COMMIT` (a `Q` message,
/// its length, then the text), as sqlx sends it.
fn is_commit(chunk: &[u8]) -> bool {
    let text = b"COMMIT\0";
    chunk.windows(5 + text.len()).any(|window| {
        window[0] == b'Q'
            && u32::from_be_bytes([window[1], window[2], window[3], window[4]])
                == 4 + text.len() as u32
            && &window[5..] == text
    })
}
