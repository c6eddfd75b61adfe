//! The MaxMind-format databases: country and city, autonomous system.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::{geoip2, Reader};

use crate::error::Problem;
use f2b_notify_core::{clean, Context, MAX_NAME};

/// Which database a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `geoip`: City or Country.
    Place,
    /// `asn`: ASN.
    Network,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Self::Place => "geoip",
            Self::Network => "asn",
        }
    }
}

/// One database, read into memory.
pub(crate) struct Database {
    kind: Kind,
    reader: Reader<Vec<u8>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("kind", &self.kind)
            .field("database_type", &self.reader.metadata().database_type)
            .finish()
    }
}

impl Database {
    /// Reads and checks the file `path` for the key of `kind`.
    ///
    /// The file is read, not memory-mapped: mapping needs `unsafe` (a file truncated while
    /// mapped faults), which this workspace denies. A GeoLite2-City file is about 60 MB.
    pub(crate) fn open(kind: Kind, path: &Path) -> Result<Self, Problem> {
        let problem = |reason: String| Problem::new(kind.key(), Some(path), reason);
        let bytes = std::fs::read(path).map_err(|e| problem(format!("cannot read it: {e}")))?;
        if bytes.is_empty() {
            return Err(problem("the file is empty, not a MaxMind-format (.mmdb) database".into()));
        }
        let reader =
            Reader::from_source(bytes).map_err(|e| problem(format!("not a MaxMind-format (.mmdb) database: {e}")))?;
        let kind_of_file = reader.metadata().database_type.clone();
        let lower = kind_of_file.to_ascii_lowercase();
        let wrong = match kind {
            Kind::Place => lower.contains("asn") && !lower.contains("city") && !lower.contains("country"),
            Kind::Network => lower.contains("city") || lower.contains("country"),
        };
        if wrong {
            let wanted = match kind {
                Kind::Place => "a City or Country database (GeoLite2-City, DB-IP City Lite)",
                Kind::Network => "an ASN database (GeoLite2-ASN, DB-IP ASN Lite)",
            };
            let shown = clean(&kind_of_file, MAX_NAME).unwrap_or_default();
            return Err(problem(format!("is a {shown} database; `{}` wants {wanted}", kind.key())));
        }
        // One lookup, to find a broken search tree or data section now rather than per message.
        reader
            .lookup(IpAddr::from([1, 1, 1, 1]))
            .and_then(|r| self::decode_probe(kind, &r))
            .map_err(|e| problem(format!("not a readable MaxMind-format (.mmdb) database: {e}")))?;
        Ok(Self { kind, reader })
    }

    /// Fills the fields of this database into `ctx`. A database that fails for this address
    /// (corrupt data) leaves them out.
    pub(crate) fn fill(&self, ip: IpAddr, ctx: &mut Context) {
        let Ok(found) = self.reader.lookup(ip) else { return };
        match self.kind {
            Kind::Place => {
                let Ok(Some(city)) = found.decode::<geoip2::City<'_>>() else { return };
                ctx.country = city.country.names.english.and_then(|n| clean(n, MAX_NAME));
                ctx.country_code = city.country.iso_code.and_then(|c| clean(c, 8));
                ctx.city = city.city.names.english.and_then(|n| clean(n, MAX_NAME));
            }
            Kind::Network => {
                let Ok(Some(asn)) = found.decode::<geoip2::Asn<'_>>() else { return };
                ctx.asn = asn.autonomous_system_number;
                ctx.as_org = asn.autonomous_system_organization.and_then(|o| clean(o, MAX_NAME));
            }
        }
    }
}

fn decode_probe<S: AsRef<[u8]>>(
    kind: Kind,
    found: &maxminddb::LookupResult<'_, S>,
) -> Result<(), maxminddb::MaxMindDbError> {
    match kind {
        Kind::Place => found.decode::<geoip2::City<'_>>().map(drop),
        Kind::Network => found.decode::<geoip2::Asn<'_>>().map(drop),
    }
}
