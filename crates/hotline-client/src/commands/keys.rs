//! `hotline keygen` and `hotline credential import`: an officer's keys, made on the officer's
//! own machine (SPEC.md §15.2.5). The formats and checks are `hotline_transport::request` and
//! `hotline_transport::officer_keys`, shared with the node.

use std::path::Path;

use hotline_transport::officer_keys::{self, KeysError, OfficerKeys};
use hotline_transport::request::{self, IssuedFile};

use crate::error::{Exit, Failure, Result};
use crate::format::clean;

/// `hotline keygen --name NAME --out DIR`: makes the key directory and prints what to do next.
pub fn keygen(name: &str, dir: &Path) -> Result<()> {
    let (keys, _) =
        OfficerKeys::create(dir, name, hotline_transport::now_ms()).map_err(|e| match e {
            KeysError::Invalid { msg, .. } => {
                Failure::usage(format!("cannot make keys in {}: {msg}", dir.display()))
            }
            other => Failure::general(other.to_string()),
        })?;
    let request = dir.join(officer_keys::REQUEST_FILE);
    println!(
        "Made the officer keys of {} in {} (secret: {}, mode 0600; it never leaves this machine).",
        clean(name),
        dir.display(),
        dir.join(officer_keys::SECRET_FILE).display()
    );
    println!(
        "Officer key fingerprint: {}",
        request::fingerprint(&keys.officer_key())
    );
    println!(
        "Next: send {} (public) to your node's administrator, and read them the fingerprint by \
         phone. They issue the credential with `hotlined operator add --request FILE --role \
         officer --out ISSUED` and send you ISSUED; then run:\n  hotline credential import \
         --keys {} --issued ISSUED",
        request.display(),
        dir.display()
    );
    Ok(())
}

/// `hotline credential import --keys DIR --issued FILE [--out FILE]`: checks that the issued
/// credential certifies the keys in DIR and writes the credential file every command reads.
pub fn import(dir: &Path, issued_path: &Path, out: Option<&Path>) -> Result<()> {
    let out = out.map_or_else(|| dir.join(officer_keys::CREDENTIAL_FILE), Path::to_owned);
    let keys = OfficerKeys::load(dir).map_err(failure)?;
    let issued = IssuedFile::load(issued_path).map_err(|e| failure(e.into()))?;
    let loaded = keys.import(&issued, issued_path, &out).map_err(failure)?;
    let cred = &loaded.credential;
    println!(
        "Wrote the {} credential of {} to {} (secret, mode 0600), valid until {}.",
        cred.role().as_str(),
        clean(cred.name()),
        out.display(),
        hotline_transport::time::utc_minute(cred.not_after())
    );
    println!(
        "Issued by node {} (fingerprint {}): check the fingerprint with your administrator.",
        loaded.node,
        loaded.node.fingerprint()
    );
    println!(
        "Use it with `hotline --credential {} whoami`, or set HOTLINE_CREDENTIAL={} (or copy it \
         to ~/.config/hotline/credential, mode 0600).",
        out.display(),
        out.display()
    );
    Ok(())
}

fn failure(e: KeysError) -> Failure {
    match e {
        KeysError::Invalid { .. } | KeysError::Credential(_) | KeysError::Request(_) => {
            Failure::new(Exit::Credential, e.to_string())
        }
        other => Failure::general(other.to_string()),
    }
}
