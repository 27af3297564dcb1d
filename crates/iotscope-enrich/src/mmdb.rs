//! MaxMind-format databases (`.mmdb`): AS tables (GeoLite2-ASN and the
//! like) become an [`AsnTable`]; location databases answer address to
//! country, region, city and coordinates. Two record layouts are read:
//! MaxMind's GeoIP2/GeoLite2 (`country.iso_code`, `city.names.en`,
//! `subdivisions[0]`, `location`) and ip-location-db's flat one
//! (`country_code`, `state1`, `city`, `latitude`, `longitude`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use maxminddb::Reader;
use serde::Deserialize;

use crate::{key, AsnTable};

/// A database that cannot be opened or read.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {what}")]
pub struct MmdbError {
    /// File.
    pub file: String,
    /// What is wrong.
    pub what: String,
}

fn mmdb_error(file: &Path, e: impl std::fmt::Display) -> MmdbError {
    MmdbError {
        file: file.display().to_string(),
        what: e.to_string(),
    }
}

#[derive(Deserialize)]
struct AsRecord {
    autonomous_system_number: Option<u32>,
    autonomous_system_organization: Option<String>,
}

impl AsnTable {
    /// Reads a MaxMind-format AS database (GeoLite2-ASN's
    /// `autonomous_system_number` and `_organization`) into a range table,
    /// so lookups cost what every other table's do.
    pub fn from_mmdb(path: &Path) -> Result<AsnTable, MmdbError> {
        let reader = Reader::open_readfile(path).map_err(|e| mmdb_error(path, e))?;
        let mut orgs: Vec<String> = Vec::new();
        let mut org_index: HashMap<String, u32> = HashMap::new();
        let mut ranges = Vec::new();
        let networks = reader
            .networks(Default::default())
            .map_err(|e| mmdb_error(path, e))?;
        for item in networks {
            let item = item.map_err(|e| mmdb_error(path, e))?;
            let Some(rec) = item.decode::<AsRecord>().map_err(|e| mmdb_error(path, e))? else {
                continue;
            };
            let Some(asn) = rec.autonomous_system_number.filter(|&a| a != 0) else {
                continue;
            };
            let net = item.network().map_err(|e| mmdb_error(path, e))?;
            // The range in the table's keys (IPv4 as IPv4-mapped IPv6).
            let first = key(net.network());
            let len = u32::from(net.prefix()) + if net.is_ipv4() { 96 } else { 0 };
            let last = first | u128::MAX.checked_shr(len).unwrap_or(0);
            let org = rec.autonomous_system_organization.unwrap_or_default();
            let index = match org_index.get(&org) {
                Some(&i) => i,
                None => {
                    orgs.push(org.clone());
                    org_index.insert(org, (orgs.len() - 1) as u32);
                    (orgs.len() - 1) as u32
                }
            };
            ranges.push((first, last, asn, index));
        }
        ranges.sort_unstable();
        Ok(AsnTable::from_sorted_ranges(ranges, orgs))
    }
}

/// Where an address is, as far as the database knows.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Geo {
    /// ISO 3166-1 alpha-2 country code ("" when unknown).
    pub country: String,
    /// First-level subdivision (state, prefecture), English name.
    pub region: String,
    /// City, English name.
    pub city: String,
    /// Latitude, when known.
    pub latitude: Option<f64>,
    /// Longitude, when known.
    pub longitude: Option<f64>,
}

#[derive(Deserialize)]
struct Names {
    en: Option<String>,
}

#[derive(Deserialize)]
struct Place {
    iso_code: Option<String>,
    names: Option<Names>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CityField {
    Flat(String),
    Named(Place),
}

/// A coordinate stored as a double (MaxMind) or a float (ip-location-db):
/// the decoder will not widen a float into an `f64` field by itself.
#[derive(Clone, Copy)]
struct Coordinate(f64);

impl<'de> Deserialize<'de> for Coordinate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Coordinate;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number")
            }
            fn visit_f32<E>(self, v: f32) -> Result<Coordinate, E> {
                Ok(Coordinate(f64::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Coordinate, E> {
                Ok(Coordinate(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Coordinate, E> {
                Ok(Coordinate(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Coordinate, E> {
                Ok(Coordinate(v as f64))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[derive(Deserialize)]
struct Location {
    latitude: Option<Coordinate>,
    longitude: Option<Coordinate>,
}

/// Both layouts in one record: each database fills its own fields.
#[derive(Deserialize)]
struct GeoRecord {
    // MaxMind GeoIP2 / GeoLite2.
    country: Option<Place>,
    registered_country: Option<Place>,
    subdivisions: Option<Vec<Place>>,
    location: Option<Location>,
    // ip-location-db.
    country_code: Option<String>,
    state1: Option<String>,
    latitude: Option<Coordinate>,
    longitude: Option<Coordinate>,
    // Both (a string in ip-location-db, names in MaxMind's).
    city: Option<CityField>,
}

impl GeoRecord {
    fn into_geo(self) -> Geo {
        let english = |p: &Place| p.names.as_ref().and_then(|n| n.en.clone());
        let country = self
            .country_code
            .or_else(|| self.country.as_ref().and_then(|c| c.iso_code.clone()))
            .or_else(|| {
                self.registered_country
                    .as_ref()
                    .and_then(|c| c.iso_code.clone())
            })
            .unwrap_or_default();
        let region = self
            .state1
            .or_else(|| {
                self.subdivisions
                    .as_ref()
                    .and_then(|s| s.first())
                    .and_then(english)
            })
            .unwrap_or_default();
        let city = match self.city {
            Some(CityField::Flat(s)) => s,
            Some(CityField::Named(p)) => english(&p).unwrap_or_default(),
            None => String::new(),
        };
        let (latitude, longitude) = match self.location {
            Some(l) => (l.latitude, l.longitude),
            None => (self.latitude, self.longitude),
        };
        // Float32 coordinates (ip-location-db) print as 34.859798431396484:
        // four decimals (about 10 m) is more than any of these databases knows.
        let round = |v: Option<Coordinate>| v.map(|x| (x.0 * 10_000.0).round() / 10_000.0);
        Geo {
            country,
            region,
            city,
            latitude: round(latitude),
            longitude: round(longitude),
        }
    }
}

/// One or more location databases (ip-location-db ships IPv4 and IPv6 in
/// separate files); the first that knows an address answers.
pub struct GeoDb {
    readers: Vec<(String, Reader<Vec<u8>>)>,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb")
            .field(
                "files",
                &self.readers.iter().map(|r| &r.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl GeoDb {
    /// Opens each file (read into memory: about 30-60 MB for a city database).
    pub fn open(paths: &[impl AsRef<Path>]) -> Result<GeoDb, MmdbError> {
        let mut readers = Vec::new();
        for p in paths {
            let p = p.as_ref();
            let r = Reader::open_readfile(p).map_err(|e| mmdb_error(p, e))?;
            readers.push((p.display().to_string(), r));
        }
        Ok(GeoDb { readers })
    }

    /// Where `ip` is; None when no database has it.
    pub fn lookup(&self, ip: IpAddr) -> Option<Geo> {
        for (_, r) in &self.readers {
            // An IPv6 address in an IPv4-only database is an error: not here.
            if ip.is_ipv6() && r.metadata().ip_version == 4 {
                continue;
            }
            let Ok(found) = r.lookup(ip) else { continue };
            if let Ok(Some(rec)) = found.decode::<GeoRecord>() {
                let geo = rec.into_geo();
                if !geo.country.is_empty() || geo.latitude.is_some() {
                    return Some(geo);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_record_layouts_read_the_same() {
        let maxmind = serde_json::json!({
            "city": {"geoname_id": 1857046, "names": {"en": "Minoh", "ja": "箕面市"}},
            "country": {"iso_code": "JP", "names": {"en": "Japan"}},
            "location": {"accuracy_radius": 10, "latitude": 34.8598, "longitude": 135.4675},
            "subdivisions": [{"iso_code": "27", "names": {"en": "Osaka"}}]
        });
        let flat = serde_json::json!({
            "city": "Minoh", "country_code": "JP", "latitude": 34.859798431396484,
            "longitude": 135.46749877929688, "postcode": "562-0001", "state1": "Osaka", "state2": ""
        });
        let a = serde_json::from_value::<GeoRecord>(maxmind)
            .unwrap()
            .into_geo();
        let b = serde_json::from_value::<GeoRecord>(flat)
            .unwrap()
            .into_geo();
        assert_eq!(a, b);
        assert_eq!(a.country, "JP");
        assert_eq!(a.region, "Osaka");
        assert_eq!(a.latitude, Some(34.8598));
        // Only the registered country known (MaxMind, some IPv6 blocks).
        let reg = serde_json::json!({"registered_country": {"iso_code": "US"}});
        let g = serde_json::from_value::<GeoRecord>(reg).unwrap().into_geo();
        assert_eq!((g.country.as_str(), g.latitude), ("US", None));
    }

    #[test]
    fn a_file_that_is_not_a_database_names_itself() {
        let dir = std::env::temp_dir().join(format!("iotscope-mmdb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.mmdb");
        std::fs::write(&f, b"not a database").unwrap();
        let e = GeoDb::open(&[&f]).unwrap_err();
        assert!(e.to_string().starts_with(&f.display().to_string()), "{e}");
        assert!(AsnTable::from_mmdb(&f).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
