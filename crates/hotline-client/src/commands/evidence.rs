//! `export` (evidence bundle from the node to a file) and `verify` (that file, offline).

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use hotline_protocol::wire;
use prost::Message;

use super::{Ctx, now_ms};
use crate::error::{Exit, Failure, Result};
use crate::format::{Colour, Style, emit, emit_json, second};
use crate::parse;
use crate::verify::{self, MAX_EVIDENCE_LEN, Report};

/// `export`.
pub async fn export(
    ctx: &Ctx,
    out: &Path,
    peer: Option<String>,
    since: Option<String>,
    force: bool,
) -> Result<()> {
    let since_ms = match since {
        Some(s) => parse::since(&s, now_ms()).map_err(Failure::usage)?,
        None => 0,
    };
    if out.exists() && !force {
        return Err(Failure::usage(format!(
            "{} exists already; choose another --out, or add --force to overwrite it",
            out.display()
        )));
    }
    let (_cred, client) = ctx.open().await?;
    let resp = client
        .export(wire::ExportRequest {
            peer: peer.unwrap_or_default(),
            since_ms,
        })
        .await?;
    client.close().await;
    let bundle = resp
        .bundle
        .ok_or_else(|| Failure::general("the node's export answer holds no evidence bundle"))?;
    // prost writes fields in order, without defaults: the canonical form (§15.7.1).
    let bytes = bundle.encode_to_vec();
    // The file holds no secret (§15.5.7): world-readable is fine.
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).mode(0o644);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    opts.open(out)
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
        .map_err(|e| Failure::general(format!("cannot write {}: {e}", out.display())))?;
    let receipts: usize = bundle.items.iter().map(|i| i.receipts.len()).sum();
    emit(&format!(
        "Wrote {}: {} message(s), {} receipt(s), {} bytes.\n",
        out.display(),
        bundle.items.len(),
        receipts,
        bytes.len()
    ));
    match verify::verify_evidence(&bytes) {
        Ok(r) if r.valid => {
            emit(&format!(
                "It verifies. Anyone can check it offline with: hotline verify {}\n",
                out.display()
            ));
            Ok(())
        }
        Ok(r) => Err(Failure::new(
            Exit::Verification,
            format!(
                "the exported evidence does not verify ({} of {} items fail); `hotline verify {}` shows which",
                r.items.iter().filter(|i| !i.valid).count(),
                r.items.len(),
                out.display()
            ),
        )),
        Err(e) => Err(Failure::new(
            Exit::Verification,
            format!("the exported evidence does not verify: {e}"),
        )),
    }
}

/// `verify`: no node, no credential (§15.7).
pub fn verify(ctx: &Ctx, file: &Path, json: bool) -> Result<()> {
    let len = std::fs::metadata(file)
        .map_err(|e| Failure::general(format!("cannot read {}: {e}", file.display())))?
        .len();
    if len > MAX_EVIDENCE_LEN as u64 {
        return Err(Failure::new(
            Exit::Verification,
            format!(
                "{}: {len} bytes, over the 16 MiB limit of an evidence file",
                file.display()
            ),
        ));
    }
    let bytes = std::fs::read(file)
        .map_err(|e| Failure::general(format!("cannot read {}: {e}", file.display())))?;
    let report = match verify::verify_evidence(&bytes) {
        Ok(r) => r,
        Err(e) => {
            if json {
                emit_json(&serde_json::json!({ "valid": false, "error": e.to_string() }));
            }
            return Err(Failure::new(
                Exit::Verification,
                format!("{}: INVALID: {e}", file.display()),
            ));
        }
    };
    if json {
        emit_json(&serde_json::to_value(&report).unwrap_or_default());
    } else {
        emit(&report_text(&ctx.style, file, &report));
    }
    if report.valid {
        Ok(())
    } else {
        Err(Failure::new(
            Exit::Verification,
            format!(
                "{}: INVALID: {} of {} items fail a check",
                file.display(),
                report.items.iter().filter(|i| !i.valid).count(),
                report.items.len()
            ),
        ))
    }
}

/// The human-readable report of `verify`.
pub fn report_text(style: &Style, file: &Path, r: &Report) -> String {
    let mut out = format!(
        "{} {}\n",
        style.paint("Evidence", Colour::Bold),
        file.display()
    );
    let mut names: HashMap<&str, &str> = HashMap::new();
    out.push_str(&format!(
        "  exported by  {:<20} {}  fingerprint {}\n",
        r.exporter.name, r.exporter.node, r.exporter.fingerprint
    ));
    names.insert(&r.exporter.node, &r.exporter.name);
    for p in &r.peers {
        out.push_str(&format!(
            "  peer         {:<20} {}  fingerprint {}\n",
            p.name, p.node, p.fingerprint
        ));
        names.insert(&p.node, &p.name);
    }
    out.push_str(
        "  Compare these node ids with ones you obtained independently (e.g. read out by phone):\n  the bundles are self-signed, so the file alone cannot show whose keys these are.\n",
    );
    out.push_str(&format!(
        "  created      {} (the exporter's claim; no signature covers it)\n",
        second(r.created_ms)
    ));
    let name = |id: &Option<String>| {
        id.as_deref()
            .map(|i| {
                names
                    .get(i)
                    .map_or_else(|| i.to_owned(), |n| (*n).to_owned())
            })
            .unwrap_or_else(|| "?".into())
    };
    for it in &r.items {
        out.push_str(&format!(
            "\nItem {}  {}  {}  {} {}  seq {}  created {}\n",
            it.index,
            it.direction,
            it.message_id.as_deref().unwrap_or("(unreadable id)"),
            style.precedence(it.precedence.unwrap_or("?")),
            it.tlp.unwrap_or("?"),
            it.sequence.map_or_else(|| "?".into(), |s| s.to_string()),
            it.created_ms.map(second).unwrap_or_else(|| "?".into()),
        ));
        out.push_str(&format!(
            "  {} -> {}\n",
            name(&it.sender),
            name(&it.recipient)
        ));
        out.push_str(&format!(
            "  envelope      {}",
            style.verdict(it.envelope_valid)
        ));
        for e in &it.errors {
            out.push_str(&format!("  {}", style.paint(e, Colour::Red)));
        }
        out.push('\n');
        for rc in &it.receipts {
            out.push_str(&format!(
                "  receipt {:<13} {}  {}",
                rc.kind.unwrap_or("?"),
                style.verdict(rc.valid),
                rc.time_ms.map(second).unwrap_or_default()
            ));
            if let Some(o) = &rc.officer {
                out.push_str(&format!(
                    "  duty officer {o:?} at {}",
                    rc.ack_time_ms.map(second).unwrap_or_default()
                ));
                if let Some(n) = rc.note.as_ref().filter(|n| !n.is_empty()) {
                    out.push_str(&format!(", note {n:?}"));
                }
            }
            if let Some(reason) = &rc.reason {
                out.push_str(&format!(
                    "  {reason}: {}",
                    rc.detail.clone().unwrap_or_default()
                ));
            }
            if let Some(e) = &rc.error {
                out.push_str(&format!("  {}", style.paint(e, Colour::Red)));
            }
            if let Some(w) = &rc.warning {
                out.push_str(&format!("  {}", style.paint(w, Colour::Yellow)));
            }
            out.push('\n');
        }
        out.push_str(&format!("  status        {}\n", it.status));
    }
    let receipts: usize = r.items.iter().map(|i| i.receipts.len()).sum();
    let failed = r.items.iter().filter(|i| !i.valid).count();
    out.push_str(&if r.valid {
        format!(
            "\nResult: {} ({} items, {} receipts)\n",
            style.paint("VALID", Colour::Green),
            r.items.len(),
            receipts
        )
    } else {
        format!(
            "\nResult: {} ({failed} of {} items fail)\n",
            style.paint("INVALID", Colour::Red),
            r.items.len()
        )
    });
    out
}
