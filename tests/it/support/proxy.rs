//! A TCP proxy to stand between a server and its database, for real faults: [`Proxy::cut`]
//! drops every connection through it and closes its port (new connections are refused by the
//! kernel), [`Proxy::restore`] listens on the same port again.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

/// A proxy on 127.0.0.1 to `upstream`.
pub struct Proxy {
    /// Where it listens.
    pub addr: SocketAddr,
    upstream: SocketAddr,
    /// The accept loop and every connection's copy task, aborted together on a cut.
    tasks: Arc<Mutex<JoinSet<()>>>,
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
        self.tasks.lock().unwrap().spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tasks.lock().unwrap().spawn(async move {
                    let _ = client.set_nodelay(true);
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        let _ = server.set_nodelay(true);
                        let (mut client, mut server) = (client, server);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        addr
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

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}
