//! The instances' ports: `--base-port` + index, each checked free before anything starts, or
//! any free ports with `--base-port 0`.

use std::net::TcpListener;

use crate::error::LaunchError;

/// `count` ports on `host`: `base`, `base + 1`, … (each must be free), or with `base` 0 ports
/// the OS picks. Picked ports are held together while picking, so they differ, then released
/// for the servers to bind; another process could take one in between, and that instance then
/// fails its start-up with its own "address in use".
pub fn assign(host: &str, base: u16, count: usize) -> Result<Vec<u16>, LaunchError> {
    if base == 0 {
        let mut held = Vec::with_capacity(count);
        for _ in 0..count {
            let l = TcpListener::bind((host, 0)).map_err(|source| LaunchError::NoFreePort {
                host: host.to_string(),
                source,
            })?;
            let port = l
                .local_addr()
                .map_err(|source| LaunchError::NoFreePort {
                    host: host.to_string(),
                    source,
                })?
                .port();
            held.push((l, port));
        }
        return Ok(held.into_iter().map(|(_, p)| p).collect());
    }
    let last = usize::from(base) + count.saturating_sub(1);
    if last > usize::from(u16::MAX) {
        return Err(LaunchError::Invalid {
            flag: "--base-port",
            message: format!(
                "{count} instances from port {base} would need ports up to {last}; pick a lower --base-port"
            ),
        });
    }
    (0..count)
        .map(|i| {
            let port = base + i as u16;
            TcpListener::bind((host, port))
                .map(|_| port)
                .map_err(|source| LaunchError::PortInUse {
                    host: host.to_string(),
                    port,
                    source,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_ports_differ_and_fixed_ports_are_checked() {
        let ports = assign("127.0.0.1", 0, 3).unwrap();
        assert_eq!(ports.len(), 3);
        assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2]);

        let busy = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = busy.local_addr().unwrap().port();
        let e = assign("127.0.0.1", port, 1).unwrap_err().to_string();
        assert!(
            e.contains(&format!("port {port} on 127.0.0.1 is in use"))
                && e.contains("--base-port 0"),
            "{e}"
        );

        let e = assign("127.0.0.1", 65535, 2).unwrap_err().to_string();
        assert!(e.starts_with("--base-port:"), "{e}");
    }
}
