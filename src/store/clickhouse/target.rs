//! Where a ClickHouse store lives, parsed from its store URL.

/// Where a ClickHouse store lives:
/// `clickhouse+http://[USER[:PASSWORD]@]HOST:PORT/DATABASE[?cluster=NAME[&shards=H:P,H:P…]]`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClickHouseTarget {
    /// `http://HOST:PORT`: the server this collector writes to and queries.
    pub endpoint: String,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub cluster: Option<Cluster>,
}

/// A cluster of shards (named in every server's `remote_servers`): tables are created on each
/// shard, this collector writes to its own server's local tables and reads through
/// `Distributed` tables over all shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub name: String,
    /// `http://HOST:PORT` of every shard's server (from `shards=`; by default the shards of
    /// `system.clusters`, on the store URL's HTTP port).
    pub shards: Vec<String>,
}

impl std::fmt::Debug for ClickHouseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseTarget")
            .field("endpoint", &self.endpoint)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("cluster", &self.cluster)
            .finish()
    }
}

impl ClickHouseTarget {
    /// Parses a `clickhouse+http://` store URL; credentials in it win over `user`/`password`.
    pub fn parse(text: &str, user: Option<String>, password: Option<String>) -> Result<Self, String> {
        let bad = || format!("store {text:?} is not clickhouse+http://HOST:PORT/DATABASE");
        let rest = text.strip_prefix("clickhouse+").ok_or_else(bad)?;
        let u = url::Url::parse(rest).map_err(|_| bad())?;
        if u.scheme() != "http" || u.fragment().is_some() {
            return Err(format!("{} (only plain http is supported)", bad()));
        }
        let cluster = parse_cluster(&u)?;
        let host = u.host_str().ok_or_else(bad)?;
        let port = u.port().unwrap_or(8123);
        let database = u.path().trim_matches('/');
        if database.is_empty()
            || database.len() > 64
            || !database.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            || database.as_bytes()[0].is_ascii_digit()
        {
            return Err(format!("{}: the database name must be letters, digits and _", bad()));
        }
        let decode =
            |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
        let url_user = (!u.username().is_empty()).then(|| decode(u.username())).flatten();
        let url_password = u.password().and_then(decode);
        Ok(Self {
            endpoint: format!("http://{host}:{port}"),
            database: database.to_owned(),
            user: url_user.or(user),
            password: url_password.or(password),
            cluster,
        })
    }
}

/// `?cluster=NAME[&shards=HOST:PORT,…]`; nothing else may be in the query.
fn parse_cluster(u: &url::Url) -> Result<Option<Cluster>, String> {
    let (mut name, mut shards) = (None, Vec::new());
    for (k, v) in u.query_pairs() {
        match k.as_ref() {
            "cluster" if !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
                name = Some(v.into_owned())
            }
            "shards" => {
                for shard in v.split(',').filter(|s| !s.is_empty()) {
                    let ok = url::Url::parse(&format!("http://{shard}"))
                        .is_ok_and(|s| s.path() == "/" && s.port().is_some());
                    if !ok {
                        return Err(format!("shard {shard:?} is not HOST:PORT"));
                    }
                    shards.push(format!("http://{shard}"));
                }
            }
            _ => return Err(format!("unknown store URL option {k}={v:?}: use cluster=NAME and shards=HOST:PORT,…")),
        }
    }
    match name {
        Some(name) => Ok(Some(Cluster { name, shards })),
        None if shards.is_empty() => Ok(None),
        None => Err("shards= needs cluster=NAME".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls() {
        let t = ClickHouseTarget::parse("clickhouse+http://a:8123/db?cluster=two&shards=a:8123,b:9123", None, None);
        let c = t.unwrap().cluster.unwrap();
        assert_eq!(
            (c.name.as_str(), c.shards.as_slice()),
            ("two", &["http://a:8123".to_owned(), "http://b:9123".to_owned()][..])
        );
        assert_eq!(ClickHouseTarget::parse("clickhouse+http://a:1/db", None, None).unwrap().cluster, None);
        for bad in ["?cluster=", "?cluster=a-b", "?shards=a:1", "?cluster=x&shards=a", "?other=1"] {
            assert!(ClickHouseTarget::parse(&format!("clickhouse+http://a:1/db{bad}"), None, None).is_err(), "{bad}");
        }
    }
}
