//! Where a ClickHouse store lives, parsed from its store URL.

/// Where a ClickHouse store lives: `clickhouse+http://[USER[:PASSWORD]@]HOST:PORT/DATABASE`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClickHouseTarget {
    /// `http://HOST:PORT`.
    pub endpoint: String,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for ClickHouseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseTarget")
            .field("endpoint", &self.endpoint)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl ClickHouseTarget {
    /// Parses a `clickhouse+http://` store URL; credentials in it win over `user`/`password`.
    pub fn parse(text: &str, user: Option<String>, password: Option<String>) -> Result<Self, String> {
        let bad = || format!("store {text:?} is not clickhouse+http://HOST:PORT/DATABASE");
        let rest = text.strip_prefix("clickhouse+").ok_or_else(bad)?;
        let u = url::Url::parse(rest).map_err(|_| bad())?;
        if u.scheme() != "http" || u.query().is_some() || u.fragment().is_some() {
            return Err(format!("{} (only plain http is supported)", bad()));
        }
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
        })
    }
}
