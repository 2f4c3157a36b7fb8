//! Privacy: decides what may be kept and rewrites it, so no personal datum reaches a store.
//!
//! Runs between validation and the queue. Opt-out is checked from headers before decoding
//! ([`optout`]); every stored string is scrubbed ([`scrub`]), URLs are normalised ([`url`]),
//! replay documents are scrubbed by where each string sits ([`replay`]), the
//! User-Agent is reduced to a device class ([`useragent`]) and the visitor id is replaced by a
//! keyed hash ([`keys`]).

pub mod control;
pub mod keys;
pub mod optout;
pub mod replay;
pub mod scrub;
pub mod url;
pub mod useragent;

use crate::ingest::{DropReason, Dropped, ValidBatch};
use crate::model::{Client, Event, EventData, StoredBatch};
use crate::sites::Site;

pub use keys::VisitorKeyer;
pub use optout::{OptOutPolicy, OptOutSignal};

/// Rewrites a validated batch into the only shape a store may see. Events whose URL cannot be
/// made safe are dropped and counted in `dropped`.
pub fn protect(
    keyer: &VisitorKeyer,
    site: &Site,
    batch: ValidBatch,
    client: Client,
    received: i64,
    dropped: &mut Dropped,
) -> Option<StoredBatch> {
    // In place: an event is large, and copying 50 of them into a new vector shows in profiles.
    let mut events = batch.events;
    events.retain_mut(|event| match protect_event(site, event) {
        Ok(()) => true,
        Err(reason) => {
            dropped.add(reason);
            false
        }
    });
    if events.is_empty() {
        return None;
    }
    let visitor = keyer.key(&site.settings.id, &batch.vid);
    Some(StoredBatch::new(batch.site, visitor, batch.sid, batch.seq, received, client, events))
}

fn protect_event(site: &Site, event: &mut Event) -> Result<(), DropReason> {
    match &mut event.data {
        EventData::View(view) => {
            let normalized = site.page_urls.normalize(&view.url, &site.url_policy).ok_or(DropReason::BadUrl)?;
            view.url = normalized.url;
            view.path = normalized.path;
            view.referrer = view.referrer.as_deref().and_then(url::referrer_origin);
            if site.settings.keep_titles {
                if let Some(title) = &mut view.title {
                    scrub::scrub_in_place(title);
                }
            } else {
                view.title = None;
            }
        }
        EventData::Click { sel, .. } | EventData::Input { sel, .. } => {
            scrub::scrub_in_place(sel);
        }
        EventData::Focus { sel, form } | EventData::Blur { sel, form, .. } => {
            scrub::scrub_in_place(sel);
            scrub::scrub_in_place(form);
        }
        EventData::Submit { form } => {
            scrub::scrub_in_place(form);
        }
        EventData::Err { msg } => {
            scrub::scrub_in_place(msg);
        }
        EventData::Snap { d } | EventData::Mut { d } => {
            let rules = replay::DocumentRules {
                urls: &site.url_policy,
                mask: site.settings.mask_text,
                canvas: site.settings.canvas_frames(),
            };
            replay::protect_document(d, &rules);
        }
        EventData::Move { .. } | EventData::Scroll { .. } | EventData::Resize { .. } | EventData::Vis { .. } => {}
    }
    Ok(())
}
