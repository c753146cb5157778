//! `inbox`, `outbox`, `show`, `receipts` and `ack`.

use hotline_protocol::content::OpenedContent;
use hotline_protocol::envelope::Envelope;
use hotline_protocol::officer::Binding;
use hotline_protocol::wire;
use serde_json::{Value, json};

use super::{Ctx, now_ms, require_officer, resolve_id};
use crate::error::{Exit, Failure, Result};
use crate::format::{self, Cell, Colour, Style, clean, clean_text, emit, emit_json, hex, second};
use crate::verify::{self, MessageReport, ReceiptReport};

/// `inbox` (`incoming`) and `outbox`.
pub async fn list(
    ctx: &Ctx,
    incoming: bool,
    unacknowledged: bool,
    peer: Option<String>,
    limit: u32,
    json: bool,
) -> Result<()> {
    let (_cred, client) = ctx.open().await?;
    let mut msgs = client
        .list(wire::ListRequest {
            incoming,
            unacknowledged_only: unacknowledged,
            peer: peer.unwrap_or_default(),
            limit,
            cursor: Default::default(),
        })
        .await?
        .messages;
    client.close().await;
    // The node orders FLASH first; keep its order within a precedence (stable sort).
    msgs.sort_by_key(|m| {
        if m.precedence <= 0 {
            i32::MAX
        } else {
            m.precedence
        }
    });
    if json {
        emit_json(&Value::Array(
            msgs.iter().map(format::summary_json).collect(),
        ));
    } else if msgs.is_empty() {
        emit(match (incoming, unacknowledged) {
            (true, true) => "No unacknowledged messages.\n",
            (true, false) => "No messages received.\n",
            _ => "No messages sent.\n",
        });
    } else {
        emit(&format::messages_table(&ctx.style, incoming, &msgs));
    }
    Ok(())
}

fn content_json(c: &OpenedContent) -> Value {
    let d = &c.draft;
    json!({
        "subject": d.subject,
        "text": d.text,
        "language": d.language,
        "officer": c.officer.name(),
        "reply_to": d.reply_to.map(|i| hex(&i)),
        "thread_id": d.thread_id.map(|i| hex(&i)),
        "incident": d.incident.as_ref().map(|i| json!({
            "incident_id": i.incident_id,
            "severity": i.severity,
            "category": i.category,
            "indicators": i.indicators.iter().map(|x| json!({"kind": x.kind, "value": x.value})).collect::<Vec<_>>(),
        })),
    })
}

fn receipt_line(style: &Style, r: &ReceiptReport) -> String {
    let kind = r.kind.unwrap_or("(unreadable)");
    let mut s = format!("{:<13} {}", kind, style.verdict(r.valid));
    if let Some(t) = r.time_ms {
        s.push_str(&format!("  {}", second(t)));
    }
    if let Some(fp) = &r.signer_fingerprint {
        s.push_str(&format!("  signed by node {fp}"));
    }
    if let Some(o) = &r.officer {
        s.push_str(&format!(
            "\n      duty officer {o:?} acknowledged at {}",
            r.ack_time_ms.map(second).unwrap_or_default()
        ));
        if let Some(n) = r.note.as_ref().filter(|n| !n.is_empty()) {
            s.push_str(&format!(", note: {n:?}"));
        }
        if let Some(c) = &r.officer_credential {
            s.push_str(&format!("\n      {}", c.describe()));
        }
        if let Some(b) = r.officer_signature {
            s.push_str(&format!("\n      signed {}", ack_binding(b)));
        }
    }
    if let Some(reason) = &r.reason {
        s.push_str(&format!(
            "\n      reason {reason}: {}",
            r.detail.clone().unwrap_or_default()
        ));
    }
    if let Some(a) = r.advice {
        s.push_str(&format!("\n      {a}"));
    }
    if let Some(e) = &r.error {
        s.push_str(&format!("\n      {}", style.paint(e, Colour::Red)));
    }
    if let Some(w) = &r.warning {
        s.push_str(&format!("\n      {}", style.paint(w, Colour::Yellow)));
    }
    s
}

/// What `hotline show` prints (tested with the offline checks, in `verify_tests`).
pub(crate) fn show_text(
    style: &Style,
    id: &[u8; 16],
    s: &wire::ShowResponse,
    rep: &MessageReport,
    c: Option<&OpenedContent>,
) -> String {
    let m = s.summary.clone().unwrap_or_default();
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{:<12}{v}\n", format!("{k}:")));
    let prec = format::precedence_name(m.precedence);
    line("Message", hex(id));
    if let Some(c) = c {
        line(
            "Subject",
            style.paint(&clean(&c.draft.subject), Colour::Bold),
        );
    } else if rep.removed.as_ref().is_some_and(|r| r.content_ms.is_some()) {
        line("Subject", "(removed)".into());
    } else {
        line("Subject", clean(&m.subject));
    }
    line(
        "Precedence",
        format!("{}   {}", style.precedence(prec), format::tlp_name(m.tlp)),
    );
    let party = |b: &verify::BundleCheck| {
        b.party.as_ref().map_or_else(
            || "(invalid bundle)".to_owned(),
            |p| format!("{} ({})", p.name, p.fingerprint),
        )
    };
    let officer = c.map_or_else(|| clean(&m.officer), |c| clean(c.officer.name()));
    line(
        "From",
        format!("{}, duty officer {officer:?}", party(&rep.sender_bundle)),
    );
    if let Some(o) = &rep.officer {
        line("Officer", format!("{:?}, {}", o.name, o.describe()));
    }
    if let Some(b) = rep.officer_signature {
        line("Signed", signature_binding(b).to_owned());
    }
    line("To", party(&rep.receiver_bundle));
    line(
        "Direction",
        format!(
            "{} {}, sequence {}",
            if m.incoming {
                "received from"
            } else {
                "sent to"
            },
            clean(&m.peer),
            m.sequence
        ),
    );
    line(
        "Created",
        if m.created_ms == 0 {
            "(not sealed yet)".into()
        } else {
            second(m.created_ms)
        },
    );
    if m.incoming {
        line("Received", format::second_or_dash(m.received_ms));
    }
    let mut state = clean(&m.state);
    if m.overdue {
        state.push_str(" (OVERDUE)");
    }
    line("State", state);
    for r in rep.removed.iter().flat_map(|r| r.lines("the node's")) {
        line("Removed", style.paint(&r, Colour::Yellow));
    }
    if let Some(c) = c {
        let d = &c.draft;
        if !d.language.is_empty() {
            line("Language", clean(&d.language));
        }
        if let Some(r) = d.reply_to {
            line("Reply to", hex(&r));
        }
        if let Some(t) = d.thread_id {
            line("Thread", hex(&t));
        }
        if let Some(i) = &d.incident {
            let sev = ["", "low", "medium", "high", "critical"];
            let mut v = clean(&i.incident_id);
            if let Some(s) = sev.get(i.severity as usize).filter(|s| !s.is_empty()) {
                v.push_str(&format!("  severity {s}"));
            }
            if !i.category.is_empty() {
                v.push_str(&format!("  category {}", clean(&i.category)));
            }
            line("Incident", v);
            for x in &i.indicators {
                line(
                    "Indicator",
                    format!("{}: {}", clean(&x.kind), clean(&x.value)),
                );
            }
        }
        out.push('\n');
        out.push_str(&clean_text(&d.text));
        if !d.text.ends_with('\n') {
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "\n{}\n",
        style.paint("Verification", Colour::Bold)
    ));
    let check = |out: &mut String, what: &str, ok: bool, detail: String| {
        let line = format!("  {what:<24}{}  {detail}", style.verdict(ok));
        out.push_str(line.trim_end());
        out.push('\n');
    };
    let bundle = |b: &verify::BundleCheck| {
        b.party.as_ref().map_or_else(
            || b.error.clone().unwrap_or_default(),
            |p| format!("{} {}", p.name, p.node),
        )
    };
    check(
        &mut out,
        "sender's bundle",
        rep.sender_bundle.valid,
        bundle(&rep.sender_bundle),
    );
    check(
        &mut out,
        "receiver's bundle",
        rep.receiver_bundle.valid,
        bundle(&rep.receiver_bundle),
    );
    let removed = rep.removed.clone().unwrap_or_default();
    match &rep.envelope {
        None => match removed.envelope_ms {
            Some(t) => out.push_str(&format!(
                "  envelope                removed on {} (SHA-256 {}): not checked\n",
                second(t),
                removed.envelope_sha256
            )),
            None => out.push_str("  envelope                not sealed yet\n"),
        },
        Some(errors) => check(
            &mut out,
            "envelope signature",
            rep.envelope_valid,
            errors.join("; "),
        ),
    }
    match removed.content_ms {
        Some(t) => out.push_str(&format!(
            "  officer signature       removed with the content on {}: not checked\n",
            second(t)
        )),
        None => check(
            &mut out,
            "officer signature",
            rep.content_valid,
            rep.content_error
                .clone()
                .unwrap_or_else(|| format!("by {officer:?}, credential issued by the sender")),
        ),
    }
    if rep.receipts.is_empty() && removed.receipts == 0 {
        out.push_str("  receipts                none yet\n");
    }
    for r in &rep.receipts {
        out.push_str(&format!("  receipt {}\n", receipt_line(style, r)));
    }
    if removed.receipts > 0 {
        out.push_str(&format!(
            "  receipts                {} removed, the last on {}: not checked\n",
            removed.receipts,
            removed.receipts_ms.map(second).unwrap_or_default()
        ));
    }
    let status = match verify::status(&rep.receipts) {
        // The receipts that decided it are gone: the node's record is all there is.
        "no receipt" if removed.receipts > 0 => {
            format!(
                "{} (the node's record; its receipts were removed)",
                clean(&m.state)
            )
        }
        s => s.to_owned(),
    };
    out.push_str(&format!("  status                  {status}\n"));
    out
}

/// `show`.
pub async fn show(ctx: &Ctx, id: &str, json: bool) -> Result<()> {
    let (_cred, client) = ctx.open().await?;
    let id = resolve_id(&client, id).await?;
    let s = client
        .show(wire::ShowRequest {
            message_id: id.to_vec().into(),
        })
        .await?;
    client.close().await;
    let (rep, opened) = verify::check_message(&s, &id, now_ms());
    if json {
        // Which of the recipient's encryption keys it was sealed to (SPEC.md §4.3.2).
        let envelope = Envelope::parse(s.envelope.clone()).ok().map(|e| {
            json!({
                "sha256": hex(e.sha256()),
                "recipient_key_id": hex(&e.header().recipient_key_id),
            })
        });
        emit_json(&json!({
            "summary": s.summary.as_ref().map(format::summary_json),
            "envelope": envelope,
            "content": opened.as_ref().map(content_json),
            "verification": rep,
            "status": verify::status(&rep.receipts),
        }));
    } else {
        emit(&show_text(&ctx.style, &id, &s, &rep, opened.as_ref()));
    }
    if rep.valid {
        Ok(())
    } else {
        Err(Failure::new(
            Exit::Verification,
            "some checks of this message failed (see above)",
        ))
    }
}

/// `receipts`.
pub async fn receipts(ctx: &Ctx, id: &str, json: bool) -> Result<()> {
    let (_cred, client) = ctx.open().await?;
    let id = resolve_id(&client, id).await?;
    let s = client
        .show(wire::ShowRequest {
            message_id: id.to_vec().into(),
        })
        .await?;
    client.close().await;
    let (rep, _) = verify::check_message(&s, &id, now_ms());
    if json {
        emit_json(&json!({
            "message_id": hex(&id),
            "status": verify::status(&rep.receipts),
            "receipts": rep.receipts,
            "removed": rep.removed,
        }));
    } else if rep.receipts.is_empty() {
        match rep.removed.as_ref().filter(|r| r.receipts > 0) {
            Some(r) => emit(&format!(
                "No receipts held for {}: {}.\n",
                hex(&id),
                r.lines("the node's").join("; ")
            )),
            None => emit(&format!("No receipts yet for {}.\n", hex(&id))),
        }
    } else {
        let style = &ctx.style;
        let rows = rep
            .receipts
            .iter()
            .map(|r| {
                let detail = match (&r.officer, &r.reason, &r.error) {
                    (_, _, Some(e)) => e.clone(),
                    (Some(o), _, _) => format!(
                        "officer {o:?} at {}{}",
                        r.ack_time_ms.map(second).unwrap_or_default(),
                        r.note
                            .as_ref()
                            .filter(|n| !n.is_empty())
                            .map(|n| format!(", note {n:?}"))
                            .unwrap_or_default()
                    ),
                    (_, Some(reason), _) => {
                        format!("{reason}: {}", r.detail.clone().unwrap_or_default())
                    }
                    _ => String::new(),
                };
                vec![
                    Cell::new(r.kind.unwrap_or("?")),
                    Cell::new(r.time_ms.map(second).unwrap_or_default()),
                    Cell::new(r.signer_fingerprint.clone().unwrap_or_default()),
                    Cell::colour(
                        if r.valid { "ok" } else { "FAILED" },
                        Some(if r.valid { Colour::Green } else { Colour::Red }),
                    ),
                    Cell::new(detail),
                ]
            })
            .collect();
        emit(&format::table(
            style,
            &["KIND", "TIME (UTC)", "SIGNED BY NODE", "VERIFIED", "DETAIL"],
            rows,
        ));
    }
    if rep.receipts.iter().all(|r| r.valid) {
        Ok(())
    } else {
        Err(Failure::new(
            Exit::Verification,
            "a receipt does not verify (see above)",
        ))
    }
}

/// `ack`.
pub async fn ack(ctx: &Ctx, id: &str, note: &str, json: bool) -> Result<()> {
    let cred = ctx.load()?;
    require_officer(&cred, "acknowledging")?;
    if note.len() > hotline_protocol::officer::MAX_NOTE_LEN {
        return Err(Failure::usage("--note is longer than 1024 bytes"));
    }
    let client = ctx.connect(&cred).await?;
    let id = resolve_id(&client, id).await?;
    let s = client
        .show(wire::ShowRequest {
            message_id: id.to_vec().into(),
        })
        .await?;
    let incoming = s.summary.as_ref().is_some_and(|m| m.incoming);
    if !incoming {
        return Err(Failure::general(format!(
            "message {} was sent by this node; only received messages are acknowledged",
            hex(&id)
        )));
    }
    let (rep, _) = verify::check_message(&s, &id, now_ms());
    if let Some(t) = rep.removed.as_ref().and_then(|r| r.envelope_ms) {
        return Err(Failure::general(format!(
            "the envelope of {} was removed by the node's retention policy on {}: it can no \
             longer be acknowledged",
            hex(&id),
            second(t)
        )));
    }
    if !rep.envelope_valid {
        return Err(Failure::new(
            Exit::Verification,
            format!(
                "the envelope of {} does not verify; not acknowledging it (`hotline show` shows the checks)",
                hex(&id)
            ),
        ));
    }
    let env = Envelope::parse(s.envelope.clone())
        .map_err(|e| Failure::new(Exit::Verification, format!("envelope: {e}")))?;
    let ack_time = now_ms();
    // A version 2 acknowledgement binds the officer's credential too (SPEC.md §8.3); the peer
    // that sent the message checks it, so it gets one only if it speaks version 2.
    let peer = s
        .summary
        .as_ref()
        .map(|m| m.peer.clone())
        .unwrap_or_default();
    let binding = match super::find_peer(&client, &peer).await {
        Ok(p) if p.version >= hotline_protocol::PROTOCOL_VERSION_2 => Binding::Marked,
        _ => Binding::BodyOnly,
    };
    let officer_ack = cred
        .officer
        .acknowledge_as(&id, env.sha256(), ack_time, note, binding)
        .map_err(|_| {
        Failure::new(Exit::Credential, "your credential does not allow acknowledging now (not yet valid, or expired); ask for a new one")
    })?;
    let resp = client
        .ack(wire::AckRequest {
            message_id: id.to_vec().into(),
            ack: Some(officer_ack),
        })
        .await?;
    client.close().await;
    let r = verify::check_receipt(&resp.receipt, &cred.node, Some(&env));
    if !r.valid || r.kind != Some("ACKNOWLEDGED") {
        return Err(Failure::new(
            Exit::Verification,
            format!(
                "the node's answer is not a valid ACKNOWLEDGED receipt for this message: {}",
                r.error.unwrap_or_else(|| r.kind.unwrap_or("?").to_owned())
            ),
        ));
    }
    let mine = r.officer.as_deref() == Some(&clean(cred.credential.name()))
        && r.ack_time_ms == Some(ack_time);
    if json {
        emit_json(&json!({ "message_id": hex(&id), "new": mine, "receipt": r }));
    } else {
        if !mine {
            eprintln!(
                "note: the message had already been acknowledged; this is that acknowledgement, yours was not recorded"
            );
        }
        emit(&format!("{}  {}\n", hex(&id), receipt_line(&ctx.style, &r)));
    }
    Ok(())
}

/// `cancel`.
pub async fn cancel(ctx: &Ctx, id: &str, json: bool) -> Result<()> {
    let cred = ctx.load()?;
    require_officer(&cred, "cancelling")?;
    let client = ctx.connect(&cred).await?;
    let id = resolve_id(&client, id).await?;
    let resp = client
        .cancel(wire::CancelRequest {
            message_id: id.to_vec().into(),
        })
        .await?;
    client.close().await;
    if json {
        emit_json(&json!({
            "message_id": hex(&id),
            "sequence": resp.sequence,
            "cancelled_by": clean(&resp.cancelled_by),
            "cancelled_ms": resp.cancelled_ms,
        }));
    } else {
        emit(&format!(
            "{}  cancelled by {} at {}: it will never be sent (the peer will see sequence {} \
             missing)\n",
            hex(&id),
            clean(&resp.cancelled_by),
            crate::format::second(resp.cancelled_ms),
            resp.sequence
        ));
    }
    Ok(())
}

/// What an acknowledgement signature of `binding` (`v1`/`v2`) covers, for people (SPEC.md §8.3).
pub(crate) fn ack_binding(binding: &str) -> &'static str {
    if binding == "v2" {
        "over the envelope, the note and this credential (version 2)"
    } else {
        "over the envelope and the note (version 1: not the credential)"
    }
}

/// What an officer signature of `binding` (`v1`/`v2`) covers, for people (SPEC.md §7.5).
pub(crate) fn signature_binding(binding: &str) -> &'static str {
    if binding == "v2" {
        "by the officer over the text, this credential, precedence and TLP (version 2)"
    } else {
        "by the officer over the text only (version 1: not the credential, precedence or TLP)"
    }
}
