//! A TCP proxy to stand between a server and its database, for real faults: [`Proxy::cut`]
//! drops every connection through it and closes its port (new connections are refused by the
//! kernel), [`Proxy::restore`] listens on the same port again; [`Proxy::delay_replies`] makes the
//! database slow (every chunk it sends is held back a while).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

/// A proxy on 127.0.0.1 to `upstream`.
pub struct Proxy {
    /// Where it listens.
    pub addr: SocketAddr,
    upstream: SocketAddr,
    /// The accept loop and every connection's copy task, aborted together on a cut.
    tasks: Arc<Mutex<JoinSet<()>>>,
    /// How long each chunk from upstream is held back, in microseconds (0: not at all).
    delay_us: Arc<AtomicU64>,
}

fn listen(addr: SocketAddr) -> tokio::net::TcpListener {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(addr).expect("the proxy binds");
    socket.listen(128).expect("the proxy listens")
}

impl Proxy {
    /// Starts a proxy on an ephemeral port.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let mut proxy = Proxy {
            addr: ([127, 0, 0, 1], 0).into(),
            upstream,
            tasks: Arc::default(),
            delay_us: Arc::default(),
        };
        proxy.addr = proxy.serve(listen(proxy.addr));
        proxy
    }

    /// The proxy's address in a PostgreSQL URL in place of the server's.
    pub fn url(&self, database_url: &str) -> String {
        database_url.replacen(&self.upstream.to_string(), &self.addr.to_string(), 1)
    }

    fn serve(&self, listener: tokio::net::TcpListener) -> SocketAddr {
        let addr = listener.local_addr().expect("bound");
        let (upstream, tasks) = (self.upstream, self.tasks.clone());
        let delay_us = self.delay_us.clone();
        self.tasks.lock().unwrap().spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let delay_us = delay_us.clone();
                tasks.lock().unwrap().spawn(async move {
                    let _ = client.set_nodelay(true);
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        let _ = server.set_nodelay(true);
                        relay(client, server, delay_us).await;
                    }
                });
            }
        });
        addr
    }

    /// Holds back every chunk the database sends, on every connection, by `delay` from now on
    /// (`Duration::ZERO`: no longer): a slow database, as a saturated or distant one is.
    pub fn delay_replies(&self, delay: Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.delay_us.store(us, Ordering::Relaxed);
    }

    /// Drops every connection and stops listening: the database is gone, as far as anything
    /// behind the proxy can tell.
    pub fn cut(&self) {
        self.tasks.lock().unwrap().abort_all();
    }

    /// Listens on the same port again (waiting, if need be, until the cut has closed it).
    pub async fn restore(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let socket = TcpSocket::new_v4().expect("a socket");
            socket.set_reuseaddr(true).expect("SO_REUSEADDR");
            match socket.bind(self.addr).and_then(|()| socket.listen(128)) {
                Ok(listener) => {
                    self.serve(listener);
                    return;
                }
                Err(e) => assert!(
                    std::time::Instant::now() < deadline,
                    "the proxy cannot listen on {} again: {e}",
                    self.addr
                ),
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

/// Copies both ways between `client` and `server` until either side closes, holding back each
/// chunk from the server by the delay in force when it arrives.
async fn relay(client: TcpStream, server: TcpStream, delay_us: Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = tokio::io::copy(&mut client_read, &mut server_write);
    let down = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let delay = delay_us.load(Ordering::Relaxed);
            if delay > 0 {
                tokio::time::sleep(Duration::from_micros(delay)).await;
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Either side closing ends the relay (as `copy_bidirectional` did, once both were done).
    tokio::select! {
        _ = up => {}
        () = down => {}
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}
