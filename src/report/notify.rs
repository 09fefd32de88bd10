//! sd_notify without libsystemd: `STATUS=` lines for `systemctl status`.
//!
//! systemd passes `NOTIFY_SOCKET`, a datagram socket path (or `@name` in the abstract
//! namespace). Nothing here is essential: when the socket is absent or a send fails, the
//! loader carries on and the journal still has every line.

use std::os::unix::net::UnixDatagram;

pub struct Notifier {
    socket: Option<(UnixDatagram, String)>,
}

impl Notifier {
    /// A notifier for `NOTIFY_SOCKET`, or a silent one when it is unset.
    pub fn from_env() -> Notifier {
        Notifier::new(std::env::var("NOTIFY_SOCKET").ok().as_deref())
    }

    pub fn new(path: Option<&str>) -> Notifier {
        // Non-blocking: with a manager that does not read, a full queue drops an update
        // instead of stalling a load.
        let socket = path.filter(|p| !p.is_empty()).and_then(|p| {
            let socket = UnixDatagram::unbound().ok()?;
            socket.set_nonblocking(true).ok()?;
            Some((socket, p.to_owned()))
        });
        Notifier { socket }
    }

    /// Whether anyone listens: without `NOTIFY_SOCKET` there is nothing to keep up to date.
    pub fn is_active(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends `STATUS=text` (one line: a newline would end the assignment).
    pub fn status(&self, text: &str) {
        let Some((socket, path)) = &self.socket else {
            return;
        };
        let message = format!("STATUS={}", text.replace('\n', " "));
        let _ = match path.strip_prefix('@') {
            Some(name) => send_abstract(socket, name, &message),
            None => socket.send_to(message.as_bytes(), path).map(drop),
        };
    }
}

#[cfg(target_os = "linux")]
fn send_abstract(socket: &UnixDatagram, name: &str, message: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    socket.send_to_addr(message.as_bytes(), &addr).map(drop)
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &UnixDatagram, _: &str, _: &str) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_status_to_a_path_socket() {
        let path = std::env::temp_dir().join(format!("cl-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        Notifier::new(path.to_str()).status("loading 1/2 debian:bookworm\nx");
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=loading 1/2 debian:bookworm x");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn sends_status_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("cl-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        Notifier::new(Some(&format!("@{name}"))).status("done");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=done");
    }

    #[test]
    fn stays_silent_without_a_socket() {
        Notifier::new(None).status("nobody listens");
        Notifier::new(Some("/nonexistent/notify.sock")).status("nobody listens");
    }
}
