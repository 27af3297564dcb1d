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

/// A location table in ip-location-db's city CSV layout
/// (`start,end,country_code,state1,state2,city,postcode,latitude,longitude,timezone`),
/// as sorted disjoint ranges.
struct CsvGeo {
    ranges: Vec<(u128, u128, u32)>,
    places: Vec<Geo>,
}

impl CsvGeo {
    fn parse(text: &str, file: &str) -> Result<CsvGeo, MmdbError> {
        let mut ranges = Vec::new();
        let mut places: Vec<Geo> = Vec::new();
        let mut index: HashMap<String, u32> = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |what: String| MmdbError {
                file: format!("{file}, line {}", i + 1),
                what,
            };
            let f = crate::csv_fields(line);
            let Ok(start) = f[0].trim().parse::<IpAddr>() else {
                if ranges.is_empty() {
                    continue; // a header
                }
                return Err(err(format!("{:?} is not an address", f[0])));
            };
            if f.len() < 9 {
                return Err(err(
                    "expected start,end,country_code,state1,state2,city,postcode,latitude,longitude"
                        .into(),
                ));
            }
            let end: IpAddr = f[1]
                .trim()
                .parse()
                .map_err(|_| err(format!("{:?} is not an address", f[1])))?;
            if start.is_ipv4() != end.is_ipv4() || key(end) < key(start) {
                return Err(err(
                    "the range ends before it starts or mixes families".into()
                ));
            }
            let coordinate = |s: &str, what: &str, limit: f64| -> Result<Option<f64>, MmdbError> {
                if s.trim().is_empty() {
                    return Ok(None);
                }
                match s.trim().parse::<f64>() {
                    Ok(v) if v.abs() <= limit => Ok(Some(v)),
                    _ => Err(err(format!("{s:?} is not a {what}"))),
                }
            };
            let geo = Geo {
                country: f[2].trim().to_string(),
                region: f[3].trim().to_string(),
                city: f[5].trim().to_string(),
                latitude: coordinate(&f[7], "latitude", 90.0)?,
                longitude: coordinate(&f[8], "longitude", 180.0)?,
            };
            let k = format!(
                "{}|{}|{}|{:?}|{:?}",
                geo.country, geo.region, geo.city, geo.latitude, geo.longitude
            );
            let at = *index.entry(k).or_insert_with(|| {
                places.push(geo);
                (places.len() - 1) as u32
            });
            ranges.push((key(start), key(end), at));
        }
        ranges.sort_unstable();
        Ok(CsvGeo { ranges, places })
    }

    fn lookup(&self, ip: IpAddr) -> Option<&Geo> {
        let k = key(ip);
        let i = self.ranges.partition_point(|r| r.0 <= k);
        let r = self.ranges.get(i.checked_sub(1)?)?;
        (k <= r.1).then(|| &self.places[r.2 as usize])
    }
}

enum GeoSource {
    Mmdb(Box<Reader<Vec<u8>>>),
    Csv(CsvGeo),
}

/// One or more location databases (ip-location-db ships IPv4 and IPv6 in
/// separate files); the first that knows an address answers. Files ending
/// in `.csv` are read as ip-location-db's city CSV, the rest as mmdb.
pub struct GeoDb {
    sources: Vec<(String, GeoSource)>,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb")
            .field(
                "files",
                &self.sources.iter().map(|r| &r.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl GeoDb {
    /// Opens each file (read into memory: about 30-60 MB for a city database).
    pub fn open(paths: &[impl AsRef<Path>]) -> Result<GeoDb, MmdbError> {
        let mut sources = Vec::new();
        for p in paths {
            let p = p.as_ref();
            let name = p.display().to_string();
            let source = if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
                let text = std::fs::read_to_string(p).map_err(|e| mmdb_error(p, e))?;
                GeoSource::Csv(CsvGeo::parse(&text, &name)?)
            } else {
                GeoSource::Mmdb(Box::new(
                    Reader::open_readfile(p).map_err(|e| mmdb_error(p, e))?,
                ))
            };
            sources.push((name, source));
        }
        Ok(GeoDb { sources })
    }

    /// Where `ip` is; None when no database has it.
    pub fn lookup(&self, ip: IpAddr) -> Option<Geo> {
        for (_, source) in &self.sources {
            let r = match source {
                GeoSource::Csv(t) => match t.lookup(ip) {
                    Some(g) => return Some(g.clone()),
                    None => continue,
                },
                GeoSource::Mmdb(r) => r,
            };
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
    fn city_csv_ranges_answer_and_bad_lines_name_their_line() {
        let text = "ip_range_start,ip_range_end,country_code,state1,state2,city,postcode,latitude,longitude,timezone\n\
                    198.51.100.0,198.51.100.255,JP,Osaka,,Minoh,562-0001,34.8598,135.4675,Asia/Tokyo\n\
                    2001:db8::,2001:db8::ffff,US,,,\"Springfield, IL\",,39.8,-89.6,\n";
        let t = CsvGeo::parse(text, "geo.csv").unwrap();
        let g = t.lookup("198.51.100.7".parse().unwrap()).unwrap();
        assert_eq!((g.country.as_str(), g.city.as_str()), ("JP", "Minoh"));
        assert_eq!(g.latitude, Some(34.8598));
        let g = t.lookup("2001:db8::5".parse().unwrap()).unwrap();
        assert_eq!(g.city, "Springfield, IL");
        assert!(t.lookup("198.51.101.0".parse().unwrap()).is_none());
        let bad = "198.51.100.0,198.51.100.255,JP,,,,,134.0,10.0\n";
        let e = CsvGeo::parse(bad, "geo.csv").err().unwrap();
        assert_eq!(
            e.to_string(),
            "geo.csv, line 1: \"134.0\" is not a latitude"
        );
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
