//! Where webhooks may be sent. A subscription's URL must be `https`, and its host must not be
//! — nor resolve to — a loopback, private, link-local or otherwise internal address: a
//! customer must not be able to make the server call into its own network (SSRF). Hosts that
//! `--webhook-allowed-hosts` names (`host` for every port, or `host:port`) are exempt from
//! both rules, which is how tests and on-premises receivers are reached.
//!
//! The checks run when a subscription is created or changed and again at every delivery:
//! a name that resolved to a public address then may resolve to an internal one later (DNS
//! rebinding), so deliveries resolve through [`GuardedResolver`], which drops internal
//! addresses, and connect only to what it returned.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;
use url::{Host, Url};

/// The longest URL a subscription may have.
pub const MAX_URL_CHARS: usize = 2000;

/// How long a create waits for the target's name to resolve.
const CREATE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// A host `--webhook-allowed-hosts` exempts: every port of it, or one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    host: String,
    port: Option<u16>,
}

impl FromStr for AllowedHost {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        // Parsed as the authority of a URL, so `[::1]:8443` and `Example.COM` read as a
        // URL's host does.
        let url = Url::parse(&format!("http://{text}/"))
            .map_err(|error| format!("{text:?} is not a host or host:port: {error}"))?;
        let host = url
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| format!("{text:?} names no host"))?;
        if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
            return Err(format!("{text:?} is not a host or host:port"));
        }
        // The port as written: the URL's own drops one that is its scheme's default
        // (`host:80` would read as every port).
        let port = match text.rsplit_once(':') {
            Some((head, port)) if !head.ends_with(':') && !port.contains(']') => Some(
                port.parse::<u16>()
                    .map_err(|_| format!("{text:?} has no valid port"))?,
            ),
            _ => None,
        };
        Ok(AllowedHost {
            host: host.to_owned(),
            port,
        })
    }
}

/// Why a URL is not a target webhooks may be sent to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("must be an absolute URL: {0}")]
    Malformed(String),
    #[error("must be at most {MAX_URL_CHARS} characters")]
    TooLong,
    #[error("must use https")]
    NotHttps,
    #[error("must not carry a user name or password")]
    Credentials,
    #[error("must not have a fragment")]
    Fragment,
    #[error("must not be a loopback, private, link-local or other internal address")]
    Internal,
}

/// The rules above, with the hosts this server exempts.
#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    allowed: Vec<AllowedHost>,
}

impl TargetPolicy {
    pub fn new(allowed: Vec<AllowedHost>) -> Self {
        TargetPolicy { allowed }
    }

    /// Whether the URL's host and port are exempt from the rules.
    pub fn exempts(&self, url: &Url) -> bool {
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return false;
        };
        self.allowed
            .iter()
            .any(|allowed| allowed.host == host && allowed.port.is_none_or(|p| p == port))
    }

    /// Checks a URL as written: its form, its scheme, and a host written as an address (or
    /// `localhost`). Names are checked by [`Self::check_resolved`] and at delivery.
    pub fn check(&self, text: &str) -> Result<Url, TargetError> {
        if text.chars().count() > MAX_URL_CHARS {
            return Err(TargetError::TooLong);
        }
        let url = Url::parse(text).map_err(|error| TargetError::Malformed(error.to_string()))?;
        if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
            return Err(TargetError::Malformed(
                "an http(s) URL with a host is needed".into(),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::Credentials);
        }
        if url.fragment().is_some() {
            return Err(TargetError::Fragment);
        }
        if self.exempts(&url) {
            return Ok(url);
        }
        if url.scheme() != "https" {
            return Err(TargetError::NotHttps);
        }
        let internal = match url.host() {
            Some(Host::Ipv4(address)) => !is_public(IpAddr::V4(address)),
            Some(Host::Ipv6(address)) => !is_public(IpAddr::V6(address)),
            Some(Host::Domain(name)) => is_local_name(name),
            None => true,
        };
        if internal {
            return Err(TargetError::Internal);
        }
        Ok(url)
    }

    /// [`Self::check`], then, for a name that is not exempt, resolves it (briefly) and
    /// refuses it if any address it has is internal. A name that does not resolve now is
    /// accepted: deliveries check again.
    pub async fn check_resolved(&self, text: &str) -> Result<Url, TargetError> {
        let url = self.check(text)?;
        if self.exempts(&url) {
            return Ok(url);
        }
        if let (Some(Host::Domain(name)), Some(port)) = (url.host(), url.port_or_known_default()) {
            let lookup = tokio::net::lookup_host((name, port));
            if let Ok(Ok(addresses)) = tokio::time::timeout(CREATE_LOOKUP_TIMEOUT, lookup).await {
                if addresses
                    .into_iter()
                    .any(|address| !is_public(address.ip()))
                {
                    return Err(TargetError::Internal);
                }
            }
        }
        Ok(url)
    }
}

/// `localhost` and names under it, which resolvers answer locally.
fn is_local_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Whether an address is on the public internet: not loopback, private, link-local,
/// shared (carrier-grade NAT), unspecified, broadcast, multicast, documentation or
/// reserved — and for IPv6, the same of an IPv4 address it embeds.
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(address: Ipv4Addr) -> bool {
    let [a, b, ..] = address.octets();
    !(address.is_loopback()
        || address.is_private()
        || address.is_link_local()
        || address.is_unspecified()
        || address.is_broadcast()
        || address.is_multicast()
        || address.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space, RFC 6598
        || (a == 192 && b == 0 && address.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, RFC 2544
        || a >= 240) // reserved
}

fn is_public_v6(address: Ipv6Addr) -> bool {
    let first = address.segments()[0];
    !(address.is_loopback()
        || address.is_unspecified()
        || address.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local, fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local, fe80::/10
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated), fec0::/10
        || first == 0x2001 && address.segments()[1] == 0x0db8 // documentation
        || address.segments()[..2] == [0x64, 0xff9b] // NAT64 (64:ff9b::/96, 64:ff9b:1::/48)
        || first == 0x2002 // 6to4: an IPv4 address behind it
        || address.segments()[..2] == [0x2001, 0] // Teredo
        || address.segments()[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible, deprecated
}

/// The resolver deliveries use for hosts that are not exempt: it returns only public
/// addresses, and fails for a name that has none, so a name rebound to an internal
/// address after the subscription was checked is still not called.
#[derive(Debug, Clone, Default)]
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let name = name.as_str().to_owned();
        Box::pin(async move {
            if is_local_name(&name) {
                return Err(Box::new(TargetError::Internal) as _);
            }
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|address| is_public(address.ip()))
                .collect();
            if addresses.is_empty() {
                return Err(Box::new(TargetError::Internal) as _);
            }
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str]) -> TargetPolicy {
        TargetPolicy::new(allowed.iter().map(|host| host.parse().unwrap()).collect())
    }

    #[test]
    fn only_https_to_public_hosts_unless_exempt() {
        let strict = policy(&[]);
        assert!(strict.check("https://hooks.example.com/jobs?x=1").is_ok());
        assert!(strict.check("https://93.184.216.34:8443/").is_ok());
        assert_eq!(
            strict.check("http://hooks.example.com/"),
            Err(TargetError::NotHttps)
        );
        for internal in [
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[fe80::1]/",
            "https://[fd00::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://[64:ff9b::a00:1]/",
            "https://[64:ff9b:1::a00:1]/",
            "https://[2002:a00:1::1]/",
            "https://[2001:0:4136:e378::1]/",
            "https://localhost/",
            "https://api.LOCALHOST./",
            "https://2130706433/", // 127.0.0.1 written as a number
            "https://0x7f.1/",
        ] {
            assert_eq!(
                strict.check(internal),
                Err(TargetError::Internal),
                "{internal}"
            );
        }
        assert_eq!(
            strict.check("https://u:p@example.com/"),
            Err(TargetError::Credentials)
        );
        assert_eq!(
            strict.check("https://example.com/#x"),
            Err(TargetError::Fragment)
        );
        assert!(matches!(
            strict.check("example.com"),
            Err(TargetError::Malformed(_))
        ));
        assert!(matches!(
            strict.check("ftp://example.com/"),
            Err(TargetError::Malformed(_))
        ));
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert_eq!(strict.check(&long), Err(TargetError::TooLong));
    }

    #[test]
    fn allowed_hosts_exempt_their_ports_only() {
        let allowing = policy(&["127.0.0.1:9000", "receiver.test", "[::1]:8443"]);
        assert!(allowing.check("http://127.0.0.1:9000/hook").is_ok());
        assert_eq!(
            allowing.check("http://127.0.0.1:9001/"),
            Err(TargetError::NotHttps)
        );
        assert_eq!(
            allowing.check("https://127.0.0.1:9001/"),
            Err(TargetError::Internal)
        );
        assert!(allowing.check("http://receiver.test/").is_ok());
        assert!(allowing.check("http://receiver.test:81/").is_ok());
        assert!(allowing.check("https://[::1]:8443/").is_ok());
        // A default port written out is that port only, not every port.
        let port_80 = policy(&["10.0.0.5:80", "[fd00::5]:443"]);
        assert!(port_80.check("http://10.0.0.5/").is_ok());
        assert!(port_80.check("http://10.0.0.5:80/").is_ok());
        assert_eq!(
            port_80.check("http://10.0.0.5:6379/"),
            Err(TargetError::NotHttps)
        );
        assert_eq!(
            port_80.check("https://10.0.0.5:6379/"),
            Err(TargetError::Internal)
        );
        assert!(port_80.check("https://[fd00::5]/").is_ok());
        assert_eq!(
            port_80.check("https://[fd00::5]:8443/"),
            Err(TargetError::Internal)
        );
        assert!("[::1]"
            .parse::<AllowedHost>()
            .is_ok_and(|h| h.port.is_none()));
        assert!("not a host/path".parse::<AllowedHost>().is_err());
        assert!("a:b:c".parse::<AllowedHost>().is_err());
    }
}
