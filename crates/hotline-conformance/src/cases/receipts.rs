//! Receipt streams opened by the runner: receipts the target must refuse (SPEC.md §8.4, §9.4).
//!
//! The target never sent the runner anything, so every receipt here names a message it did
//! not send; the order of the checks of §8.4 decides which refusal comes first.

use bytes::Bytes;
use hotline_protocol::codes::CloseCode;
use hotline_protocol::frame::{self, FrameType};
use hotline_protocol::identity::IdentityKey;
use hotline_protocol::receipt::{Receipt, ReceiptBuild, Subject};
use hotline_protocol::wire;
use hotline_transport::now_ms;

use super::{expect_reset, tri};
use crate::ctx::{Ctx, random_id, rng};
use crate::fate::{code, code_name};
use crate::forge;
use crate::peer;
use crate::suite::{Case, Outcome};

pub fn cases() -> Vec<Case> {
    let reset =
        |c: CloseCode| format!("stream reset with {}, no ReceiptStored", code_name(code(c)));
    vec![
        Case::new(
            "receipt-for-unknown-message",
            "§8.4 step 6",
            reset(CloseCode::UnknownMessage),
            |cx| Box::pin(unknown_message(cx)),
        ),
        Case::new(
            "receipt-acknowledged-unknown-message",
            "§8.4 step 6",
            reset(CloseCode::UnknownMessage),
            |cx| Box::pin(acknowledged_unknown(cx)),
        ),
        Case::new(
            "receipt-signed-by-another-key",
            "§8.4 step 4",
            reset(CloseCode::BadReceipt),
            |cx| Box::pin(signed_by_another(cx)),
        ),
        Case::new(
            "receipt-unsupported-version",
            "§8.4 step 2",
            reset(CloseCode::BadReceipt),
            |cx| Box::pin(bad_version(cx)),
        ),
        Case::new(
            "receipt-unknown-kind",
            "§8.4 step 5",
            reset(CloseCode::BadReceipt),
            |cx| Box::pin(unknown_kind(cx)),
        ),
        Case::new(
            "receipt-garbage",
            "§9.4",
            reset(CloseCode::MalformedFrame),
            |cx| Box::pin(garbage(cx)),
        ),
        Case::new(
            "receipt-non-canonical",
            "§9.4",
            reset(CloseCode::MalformedFrame),
            |cx| Box::pin(non_canonical(cx)),
        ),
    ]
}

/// A receipt subject naming a message the target never sent to the runner.
fn unknown_subject(cx: &Ctx) -> Subject {
    Subject {
        message_id: random_id(),
        envelope_sha256: [0x5a; 32],
        sender: Bytes::copy_from_slice(cx.target.id.as_bytes()),
        sequence: 1,
    }
}

/// A valid DELIVERED receipt body by the runner for `subject`, to be edited.
fn body(cx: &Ctx, subject: &Subject) -> wire::ReceiptBody {
    wire::ReceiptBody {
        version: hotline_protocol::PROTOCOL_VERSION,
        message_id: Bytes::copy_from_slice(&subject.message_id),
        envelope_sha256: Bytes::copy_from_slice(&subject.envelope_sha256),
        sender: subject.sender.clone(),
        receiver: Bytes::copy_from_slice(cx.me.identity.id().as_bytes()),
        time_ms: now_ms(),
        kind: wire::ReceiptKind::Delivered as i32,
        sequence: subject.sequence,
        ..Default::default()
    }
}

/// Opens a receipt stream with `payload` and expects a reset with `expected`.
async fn refused(cx: &Ctx, payload: &[u8], expected: CloseCode) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let answer = link
        .exchange(cx, &frame::encode(FrameType::Receipt, payload))
        .await;
    link.raw.close();
    expect_reset(&answer, expected)
}

/// A DELIVERED receipt, correctly signed by the runner, about a message the target never sent.
fn delivered_for_unknown(cx: &Ctx) -> Result<Receipt, String> {
    Receipt::sign(
        &cx.me.identity,
        &unknown_subject(cx),
        ReceiptBuild::Delivered,
        now_ms(),
    )
    .map_err(|e| e.to_string())
}

async fn unknown_message(cx: &Ctx) -> Outcome {
    let r = tri!(delivered_for_unknown(cx));
    refused(cx, r.bytes(), CloseCode::UnknownMessage).await
}

async fn acknowledged_unknown(cx: &Ctx) -> Outcome {
    let subject = unknown_subject(cx);
    let now = now_ms();
    let ack = tri!(
        cx.me
            .officer
            .acknowledge(&subject.message_id, &subject.envelope_sha256, now, "seen")
            .map_err(|e| e.to_string())
    );
    let r = tri!(
        Receipt::sign(
            &cx.me.identity,
            &subject,
            ReceiptBuild::Acknowledged(&ack),
            now
        )
        .map_err(|e| e.to_string())
    );
    refused(cx, r.bytes(), CloseCode::UnknownMessage).await
}

async fn signed_by_another(cx: &Ctx) -> Outcome {
    let c = IdentityKey::generate(&mut rng());
    let r = tri!(
        Receipt::sign(&c, &unknown_subject(cx), ReceiptBuild::Delivered, now_ms())
            .map_err(|e| e.to_string())
    );
    refused(cx, r.bytes(), CloseCode::BadReceipt).await
}

/// A receipt signed by the runner whose body `spoil` changed: BAD_RECEIPT.
async fn spoiled(cx: &Ctx, spoil: impl FnOnce(&mut wire::ReceiptBody)) -> Outcome {
    let mut b = body(cx, &unknown_subject(cx));
    spoil(&mut b);
    refused(
        cx,
        &forge::receipt(&cx.me.identity, &b),
        CloseCode::BadReceipt,
    )
    .await
}

/// The receipt format version is 1 on links of protocol version 1 and 2 alike (SPEC.md §12.5).
async fn bad_version(cx: &Ctx) -> Outcome {
    spoiled(cx, |b| b.version = 2).await
}

async fn unknown_kind(cx: &Ctx) -> Outcome {
    spoiled(cx, |b| b.kind = 9).await
}

async fn garbage(cx: &Ctx) -> Outcome {
    refused(cx, &[0xff; 8], CloseCode::MalformedFrame).await
}

async fn non_canonical(cx: &Ctx) -> Outcome {
    let r = tri!(delivered_for_unknown(cx));
    refused(
        cx,
        &forge::with_unknown_field(r.bytes()),
        CloseCode::MalformedFrame,
    )
    .await
}
