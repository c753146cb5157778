//! `export` (evidence bundle from the node to a file) and `verify` (that file, offline).

use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use hotline_protocol::wire;

use super::{Ctx, now_ms};
use crate::error::{Exit, Failure, Result};
use crate::evidence_file::Writer;
use crate::format::{Colour, Style, emit, emit_json, second};
use crate::parse;
use crate::verify::{self, Report};

/// Fetches every page of an export into `path` (created mode 0644: it holds no secret,
/// §15.5.7): items, receipts and bytes written.
async fn write_pages(
    client: &crate::client::Client,
    path: &Path,
    peer: String,
    since_ms: u64,
) -> Result<(usize, usize, u64)> {
    let io = |e: std::io::Error| Failure::general(format!("cannot write {}: {e}", path.display()));
    let mut writer: Option<Writer<std::io::BufWriter<std::fs::File>>> = None;
    let (mut items, mut receipts) = (0, 0);
    let mut cursor = bytes::Bytes::new();
    loop {
        let resp = client
            .export(wire::ExportRequest {
                peer: peer.clone(),
                since_ms,
                cursor: cursor.clone(),
            })
            .await?;
        let mut page = resp
            .bundle
            .ok_or_else(|| Failure::general("the node's export answer holds no evidence bundle"))?;
        let page_items = std::mem::take(&mut page.items);
        let w = match &mut writer {
            Some(w) => w,
            // The first page: its bundle starts the file.
            None => {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o644)
                    .open(path)
                    .map_err(io)?;
                writer.insert(Writer::start(std::io::BufWriter::new(file), &page).map_err(io)?)
            }
        };
        for item in page_items {
            items += 1;
            receipts += item.receipts.len();
            w.item(item).map_err(io)?;
        }
        if resp.next_cursor.is_empty() {
            break;
        }
        if resp.next_cursor == cursor {
            return Err(Failure::general(
                "the node answered the same export page twice",
            ));
        }
        cursor = resp.next_cursor;
    }
    let Some(w) = writer else {
        return Err(Failure::general(
            "the node's export answer holds no evidence bundle",
        ));
    };
    let (w, bytes) = w.finish().map_err(io)?;
    w.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    Ok((items, receipts, bytes))
}

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
    // Pages are written as they come (constant memory for an export of any size) to a partial
    // file beside OUT, renamed to OUT once complete and synced.
    let partial = out.with_file_name(format!(
        "{}.partial",
        out.file_name()
            .map_or("evidence".into(), |n| n.to_string_lossy())
    ));
    let written = write_pages(&client, &partial, peer.unwrap_or_default(), since_ms).await;
    client.close().await;
    let (items, receipts, bytes) = match written {
        Ok(counts) => counts,
        Err(f) => {
            let _ = std::fs::remove_file(&partial);
            return Err(f);
        }
    };
    if !force && out.exists() {
        let _ = std::fs::remove_file(&partial);
        return Err(Failure::usage(format!(
            "{} appeared while exporting; choose another --out, or add --force",
            out.display()
        )));
    }
    std::fs::rename(&partial, out)
        .map_err(|e| Failure::general(format!("cannot write {}: {e}", out.display())))?;
    emit(&format!(
        "Wrote {}: {items} message(s), {receipts} receipt(s), {bytes} bytes.\n",
        out.display(),
    ));
    let file = std::fs::File::open(out)
        .map_err(|e| Failure::general(format!("cannot read {}: {e}", out.display())))?;
    match verify::verify_evidence_from(std::io::BufReader::new(file)) {
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
    let f = std::fs::File::open(file)
        .map_err(|e| Failure::general(format!("cannot read {}: {e}", file.display())))?;
    // One item at a time: a file of any size verifies in the memory of its largest item.
    let report = match verify::verify_evidence_from(std::io::BufReader::new(f)) {
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
    for line in &r.revocations {
        out.push_str(&format!("  revocation   {line}\n"));
    }
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
        match it.removed.as_ref().and_then(|r| r.envelope_ms) {
            Some(t) => out.push_str(&format!(
                "  envelope      {}",
                style.paint(
                    &format!(
                        "no longer held: removed on {} by the exporter's retention policy (its \
                         SHA-256 was {}); {}",
                        second(t),
                        it.removed.as_ref().map_or("", |r| &r.envelope_sha256),
                        if it.receipts.is_empty() {
                            "no receipt is left either: nothing of this message can be checked, \
                             this item is the exporter's word alone"
                        } else {
                            "only the receipts below are evidence of this message"
                        }
                    ),
                    Colour::Yellow
                )
            )),
            None => out.push_str(&format!(
                "  envelope      {}",
                style.verdict(it.envelope_valid)
            )),
        }
        for e in &it.errors {
            out.push_str(&format!("  {}", style.paint(e, Colour::Red)));
        }
        out.push('\n');
        if let Some(r) = it.removed.as_ref().filter(|r| r.receipts > 0) {
            out.push_str(&format!(
                "  receipts      {} removed by the exporter's retention policy, the last on {}\n",
                r.receipts,
                r.receipts_ms.map(second).unwrap_or_default()
            ));
        }
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
                if let Some(c) = &rc.officer_credential {
                    out.push_str(&format!(" ({})", c.describe()));
                }
                if let Some(b) = rc.officer_signature {
                    out.push_str(&format!(", signed {}", super::messages::ack_binding(b)));
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
    let gone = r
        .items
        .iter()
        .filter(|i| i.removed.as_ref().is_some_and(|r| r.envelope_ms.is_some()))
        .count();
    let gone = match gone {
        0 => String::new(),
        n => format!(
            "; the envelopes of {n} were removed by the exporter's retention policy: those rest \
             on their receipts alone"
        ),
    };
    out.push_str(&if r.valid {
        format!(
            "\nResult: {} ({} items, {} receipts{gone})\n",
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
