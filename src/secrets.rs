//! Secrets kept in the data folder with mode 0600: the operator token and the HMAC key for
//! visitor keys. Each is generated once, on first start.

use std::fs;
use std::io::Write;
use std::path::Path;

use rand::RngCore;

pub const ADMIN_TOKEN_FILE: &str = "admin-token";
pub const SECRET_FILE: &str = "secret";

/// Where the operator token came from, so `run` can print it exactly once.
pub enum AdminToken {
    FromEnv(String),
    Existing(String),
    Generated { token: String, path: std::path::PathBuf },
}

impl AdminToken {
    pub fn value(&self) -> &str {
        match self {
            AdminToken::FromEnv(t) | AdminToken::Existing(t) | AdminToken::Generated { token: t, .. } => t,
        }
    }
}

pub fn admin_token(data: &Path, from_env: Option<&str>) -> std::io::Result<AdminToken> {
    if let Some(t) = from_env {
        return Ok(AdminToken::FromEnv(t.to_owned()));
    }
    let path = data.join(ADMIN_TOKEN_FILE);
    if let Ok(existing) = fs::read_to_string(&path) {
        let t = existing.trim();
        if !t.is_empty() {
            return Ok(AdminToken::Existing(t.to_owned()));
        }
    }
    let token = hex::encode(random_bytes::<24>());
    write_private(&path, token.as_bytes())?;
    Ok(AdminToken::Generated { token, path })
}

/// The 32-byte HMAC key for visitor keys.
pub fn server_secret(data: &Path) -> std::io::Result<Vec<u8>> {
    let path = data.join(SECRET_FILE);
    match fs::read(&path) {
        Ok(bytes) if bytes.len() >= 32 => Ok(bytes),
        _ => {
            let secret = random_bytes::<32>().to_vec();
            write_private(&path, &secret)?;
            Ok(secret)
        }
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// Writes a file readable by its owner only, atomically (temp file + rename).
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = admin_token(dir.path(), None).unwrap();
        assert!(matches!(first, AdminToken::Generated { .. }));
        let again = admin_token(dir.path(), None).unwrap();
        assert!(matches!(again, AdminToken::Existing(ref t) if t == first.value()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(ADMIN_TOKEN_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(server_secret(dir.path()).unwrap(), server_secret(dir.path()).unwrap());
    }
}
