//! Sync: which messages each page carries, newest first, and the cursor.
//!
//! A run starts by opening every synced folder once: a changed UIDVALIDITY
//! ends it with `cursor-expired`; QRESYNC reports deletions; `UID SEARCH
//! SINCE` lists the messages of the window still to deliver (new mail above
//! the cursor's `top`, oldest first; backfill below its `below`, newest
//! first). Pages are then `UID FETCH … BODY.PEEK[]` batches. While the host
//! stores a page, the next batch is already on its way: the plugin sends its
//! FETCH before returning, and reads the answer on the next call.

use std::collections::{BTreeMap, HashSet, VecDeque};

use crate::bindings::exports::mailroom::provider::provider::{
    Deletion, Message, MessageFailure, Page, Progress, Window,
};
use crate::bindings::mailroom::provider::types::ProviderError;
use crate::client::{Client, Fetched, provider_error};
use crate::cursor::{Cursor, FolderState, message_id, parse_message_id};
use crate::settings::Settings;
use crate::wire::WireError;

/// The most bytes one page carries (a single larger message still goes alone).
const PAGE_BYTES: u64 = 24 << 20;
/// How many batches are requested ahead of the one being read.
const IN_FLIGHT: usize = 2;
/// Messages larger than this are reported as failed rather than fetched.
const MAX_MESSAGE: u32 = 48 << 20;

/// What is left to deliver in one folder.
struct Pending {
    state: FolderState,
    /// New mail, oldest first.
    new: VecDeque<u32>,
    /// Backfill, newest first.
    old: VecDeque<u32>,
    sizes: BTreeMap<u32, u32>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.new.is_empty() && self.old.is_empty()
    }
}

/// A batch on its way: the FETCH was sent (unless it holds only oversized
/// messages: empty tag), its answer not yet read.
struct InFlight {
    tag: String,
    batch: Batch,
}

/// The messages one page asks for, from one folder.
#[derive(Clone)]
struct Batch {
    folder: usize,
    new: Vec<u32>,
    old: Vec<u32>,
    /// Too large to fetch.
    oversized: Vec<u32>,
}

impl Batch {
    fn uids(&self) -> Vec<u32> {
        self.new.iter().chain(&self.old).copied().collect()
    }
}

/// The run's plan: valid while the host hands back the cursor it was given.
struct Plan {
    /// Batches asked for so far in this run.
    requested: usize,
    cursor: Cursor,
    /// The cursor string last returned.
    returned: String,
    folders: Vec<Pending>,
    in_flight: VecDeque<InFlight>,
    /// Deletions found while planning, for the first page.
    deletions: Vec<Deletion>,
    /// Messages that arrived with the answer to an earlier FETCH (a server
    /// may start answering a pipelined FETCH before it ends the one before),
    /// by folder and UID: each goes on its own batch's page, so that a page
    /// holds exactly what its cursor counts as done.
    early: BTreeMap<(usize, u32), Fetched>,
}

/// One signed-in sync run.
pub struct Syncer {
    settings: Settings,
    client: Client,
    plan: Option<Plan>,
}

fn err(e: WireError) -> ProviderError {
    provider_error(e)
}

impl Syncer {
    /// A run over a signed-in client.
    pub fn new(settings: Settings, client: Client) -> Self {
        Syncer {
            settings,
            client,
            plan: None,
        }
    }

    /// The folders to sync: INBOX, the `\Sent` folder and the account's others.
    fn folder_names(&mut self) -> Result<Vec<String>, ProviderError> {
        let mut names = vec!["INBOX".to_string()];
        if let Some(sent) = self.client.sent_folder()? {
            names.push(sent);
        }
        for f in &self.settings.folders {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(f)) {
                names.push(f.clone());
            }
        }
        Ok(names)
    }

    /// Open every folder, check it against the cursor and list what is left.
    fn plan(&mut self, cursor: Option<&str>, window: &Window) -> Result<Plan, ProviderError> {
        let mut cursor = match cursor {
            None => Cursor::default(),
            Some(text) => Cursor::decode(text).ok_or(ProviderError::CursorExpired)?,
        };
        let fresh = cursor.folders.is_empty();
        let skip: HashSet<&str> = window.skip.iter().map(String::as_str).collect();
        let mut folders = Vec::new();
        let mut deletions = Vec::new();
        for name in self.folder_names()? {
            let known = cursor.folder(&name).cloned();
            let Some(opened) = self
                .client
                .examine(&name, known.as_ref().map(|k| (k.validity, k.modseq)))
                .map_err(err)?
            else {
                if !self.settings.folders.contains(&name) || name == "INBOX" {
                    continue;
                }
                return Err(crate::settings::bad_config(
                    "folders",
                    format!("the server has no folder `{name}`"),
                ));
            };
            let state = match known {
                Some(k) if k.validity != opened.uidvalidity => {
                    return Err(ProviderError::CursorExpired);
                }
                Some(k) => FolderState {
                    modseq: opened.modseq.unwrap_or(0),
                    ..k
                },
                None => FolderState {
                    name: name.clone(),
                    validity: opened.uidvalidity,
                    top: opened.uidnext.saturating_sub(1),
                    below: opened.uidnext.max(1),
                    modseq: opened.modseq.unwrap_or(0),
                },
            };
            deletions.extend(opened.vanished.iter().map(|uid| Deletion {
                id: message_id(&name, state.validity, *uid),
                folder: name.clone(),
            }));
            let keep = |uid: &u32| !skip.contains(message_id(&name, state.validity, *uid).as_str());
            let new: VecDeque<u32> = if opened.uidnext > state.top + 1 {
                self.client
                    .search(state.top + 1, None, window.since)
                    .map_err(err)?
                    .into_iter()
                    .filter(keep)
                    .collect()
            } else {
                VecDeque::new()
            };
            let old: VecDeque<u32> = if state.below > 1 {
                self.client
                    .search(1, Some(state.below - 1), window.since)
                    .map_err(err)?
                    .into_iter()
                    .rev()
                    .filter(keep)
                    .collect()
            } else {
                VecDeque::new()
            };
            let all: Vec<u32> = new.iter().chain(&old).copied().collect();
            let (sizes, closed) = self.client.sizes(&all).map_err(err)?;
            if closed {
                // A message the server fails to read (Dovecot says BYE): go
                // on without the rest of the sizes; fetching finds the culprit.
                self.client = Client::connect(&self.settings)?;
            }
            if fresh {
                cursor.total += all.len() as u64;
            } else if state.below <= 1 {
                cursor.total += new.len() as u64;
            }
            folders.push(Pending {
                state,
                new,
                old,
                sizes,
            });
        }
        cursor.folders = folders.iter().map(|p| p.state.clone()).collect();
        Ok(Plan {
            returned: String::new(),
            cursor,
            folders,
            in_flight: VecDeque::new(),
            requested: 0,
            deletions,
            early: BTreeMap::new(),
        })
    }

    /// The next batch: new mail of the first folder that has some, oldest
    /// first, else its backfill, newest first.
    fn next_batch(&self, plan: &mut Plan) -> Option<Batch> {
        let folder = plan.folders.iter().position(|p| !p.is_empty())?;
        let pending = &mut plan.folders[folder];
        let mut batch = Batch {
            folder,
            new: Vec::new(),
            old: Vec::new(),
            oversized: Vec::new(),
        };
        let mut bytes = 0u64;
        let mut count = 0usize;
        // The first batch of a run is small, so that the host has its first
        // page (and starts storing) while the server streams the next ones.
        let limit = if plan.requested == 0 {
            (self.settings.batch / 5).max(1)
        } else {
            self.settings.batch
        };
        plan.requested += 1;
        for from_new in [true, false] {
            loop {
                let queue = if from_new {
                    &mut pending.new
                } else {
                    &mut pending.old
                };
                let Some(&uid) = queue.front() else { break };
                let size = pending.sizes.get(&uid).copied().unwrap_or(0);
                if count > 0 && (count >= limit || bytes + u64::from(size) > PAGE_BYTES) {
                    return Some(batch);
                }
                queue.pop_front();
                if size > MAX_MESSAGE {
                    batch.oversized.push(uid);
                    continue;
                }
                bytes += u64::from(size);
                count += 1;
                if from_new {
                    batch.new.push(uid);
                } else {
                    batch.old.push(uid);
                }
            }
        }
        Some(batch)
    }

    /// Open a folder of the plan, which must still have its UIDVALIDITY.
    fn open(&mut self, state: &FolderState) -> Result<(), ProviderError> {
        match self.client.examine(&state.name, None).map_err(err)? {
            Some(o) if o.uidvalidity == state.validity => Ok(()),
            _ => Err(ProviderError::CursorExpired),
        }
    }

    /// One page of the sync.
    pub fn sync(&mut self, cursor: Option<String>, window: Window) -> Result<Page, ProviderError> {
        let mut plan = match self.plan.take() {
            Some(plan) if Some(&plan.returned) == cursor.as_ref() => plan,
            stale => {
                if let Some(stale) = stale {
                    self.drain(stale)?;
                }
                self.plan(cursor.as_deref(), &window)?
            }
        };
        let mut page = Page {
            messages: Vec::new(),
            deletions: std::mem::take(&mut plan.deletions),
            failed: Vec::new(),
            cursor: String::new(),
            more: false,
            progress: None,
        };
        self.fill(&mut plan)?;
        if let Some(InFlight { tag, batch }) = plan.in_flight.pop_front() {
            self.deliver(&mut plan, &batch, &tag, &mut page)?;
        }
        page.progress = Some(Progress {
            done: plan.cursor.done,
            total: Some(plan.cursor.total.max(plan.cursor.done)),
        });
        page.cursor = plan.cursor.encode();
        plan.returned = page.cursor.clone();
        // Keep the server busy while the host stores this page.
        self.fill(&mut plan)?;
        page.more = !plan.in_flight.is_empty() || plan.folders.iter().any(|p| !p.is_empty());
        self.plan = Some(plan);
        Ok(page)
    }

    /// Pipelining: keep up to [`IN_FLIGHT`] batches requested ahead, so that
    /// the server streams the next one while this one is decoded and stored.
    /// Batches of another folder wait until the open folder's are read.
    fn fill(&mut self, plan: &mut Plan) -> Result<(), ProviderError> {
        while plan.in_flight.len() < IN_FLIGHT {
            let Some(folder) = plan.folders.iter().position(|p| !p.is_empty()) else {
                return Ok(());
            };
            let state = &plan.folders[folder].state;
            let open = self
                .client
                .opened()
                .is_some_and(|o| o.name == state.name && o.uidvalidity == state.validity);
            if !open {
                if !plan.in_flight.is_empty() {
                    return Ok(());
                }
                let state = state.clone();
                self.open(&state)?;
            }
            let Some(batch) = self.next_batch(plan) else {
                return Ok(());
            };
            let uids = batch.uids();
            let tag = if uids.is_empty() {
                String::new()
            } else {
                self.client.send_fetch(&uids, true).map_err(err)?
            };
            plan.in_flight.push_back(InFlight { tag, batch });
        }
        Ok(())
    }

    /// Read and drop the answers still due on a plan the host abandoned.
    fn drain(&mut self, plan: Plan) -> Result<(), ProviderError> {
        for f in plan.in_flight {
            if !f.tag.is_empty() {
                self.client.read_fetch(&f.tag).map_err(err)?;
            }
        }
        Ok(())
    }

    /// Read a batch's answer into the page and move the cursor past it.
    fn deliver(
        &mut self,
        plan: &mut Plan,
        batch: &Batch,
        tag: &str,
        page: &mut Page,
    ) -> Result<(), ProviderError> {
        let state = plan.folders[batch.folder].state.clone();
        page.failed
            .extend(batch.oversized.iter().map(|uid| too_large(&state, *uid)));
        let wanted = batch.uids();
        let mut got = HashSet::new();
        for uid in &wanted {
            if let Some(m) = plan.early.remove(&(batch.folder, *uid)) {
                got.insert(*uid);
                page.messages.push(message(&state, m));
            }
        }
        if !tag.is_empty() {
            let result = self.client.read_fetch(tag).map_err(err)?;
            let incomplete = result.incomplete();
            if result.outcome.is_err() {
                self.reconnect(&state)?;
                self.recall(plan, false)?;
            } else if incomplete {
                // The single fetches below must not be read as answers to these.
                self.recall(plan, true)?;
            }
            for m in result.messages {
                if !wanted.contains(&m.uid) {
                    // The answer to a later batch, streamed early: its page takes it.
                    plan.early.insert((batch.folder, m.uid), m);
                } else if got.insert(m.uid) {
                    page.messages.push(message(&state, m));
                }
            }
            if incomplete {
                // Ask for each missing one alone, to tell the broken from the rest.
                for uid in wanted.iter().filter(|u| !got.contains(u)) {
                    let tag = self.client.send_fetch(&[*uid], true).map_err(err)?;
                    let single = self.client.read_fetch(&tag).map_err(err)?;
                    let id = message_id(&state.name, state.validity, *uid);
                    if single.outcome.is_err() {
                        self.reconnect(&state)?;
                    }
                    let (incomplete, reason) = (single.incomplete(), single.reason());
                    if let Some(m) = single.messages.into_iter().next() {
                        page.messages.push(message(&state, m));
                    } else if single.unreadable > 0 {
                        page.failed.push(MessageFailure {
                            id,
                            why: "the server's answer for it could not be read".into(),
                        });
                    } else if incomplete {
                        page.failed.push(MessageFailure {
                            id,
                            why: format!("the server would not return it: {reason}"),
                        });
                    }
                    // Otherwise it was deleted in the meantime.
                }
            }
        }
        let folder = &mut plan.folders[batch.folder].state;
        if let Some(top) = batch.new.iter().max() {
            folder.top = folder.top.max(*top);
        }
        if let Some(low) = batch.old.iter().chain(&batch.oversized).min() {
            folder.below = folder.below.min(*low);
        }
        if batch.old.is_empty() && batch.new.is_empty() && !batch.oversized.is_empty() {
            // Only oversized ones: move past them too.
            folder.top = folder
                .top
                .max(batch.oversized.iter().copied().max().unwrap_or(0));
        }
        // Nothing left to ask for, and nothing of this folder still on its way.
        let ahead = plan
            .in_flight
            .iter()
            .any(|f| f.batch.folder == batch.folder);
        if plan.folders[batch.folder].old.is_empty() && !ahead {
            plan.folders[batch.folder].state.below = 1;
        }
        if plan.folders[batch.folder].new.is_empty()
            && !ahead
            && let Some(o) = self.client.opened()
            && o.name == state.name
        {
            let f = &mut plan.folders[batch.folder].state;
            f.top = f.top.max(o.uidnext.saturating_sub(1));
        }
        plan.cursor.done += (batch.new.len() + batch.old.len() + batch.oversized.len()) as u64;
        plan.cursor.folders = plan.folders.iter().map(|p| p.state.clone()).collect();
        Ok(())
    }

    /// Sign in again after the server closed the connection and reopen the folder.
    fn reconnect(&mut self, state: &FolderState) -> Result<(), ProviderError> {
        self.client = Client::connect(&self.settings)?;
        self.open(state)
    }

    /// Take back the batches requested ahead (reading and dropping their
    /// answers when the connection still carries them): their messages go
    /// back to the front of their queues, to be asked for again.
    fn recall(&mut self, plan: &mut Plan, read: bool) -> Result<(), ProviderError> {
        if read {
            // Answers come in the order the commands went out.
            for f in plan.in_flight.iter().filter(|f| !f.tag.is_empty()) {
                self.client.read_fetch(&f.tag).map_err(err)?;
            }
        }
        while let Some(InFlight { batch, .. }) = plan.in_flight.pop_back() {
            let pending = &mut plan.folders[batch.folder];
            for uid in batch.old.iter().chain(&batch.oversized).rev() {
                pending.old.push_front(*uid);
            }
            for uid in batch.new.iter().rev() {
                pending.new.push_front(*uid);
            }
        }
        Ok(())
    }

    /// Fetch messages again by id.
    pub fn fetch(&mut self, ids: Vec<String>) -> Result<Page, ProviderError> {
        if let Some(plan) = self.plan.take() {
            self.drain(plan)?;
        }
        let mut page = Page {
            messages: Vec::new(),
            deletions: Vec::new(),
            failed: Vec::new(),
            cursor: String::new(),
            more: false,
            progress: None,
        };
        let mut by_folder: BTreeMap<(String, u32), Vec<u32>> = BTreeMap::new();
        for id in &ids {
            match parse_message_id(id) {
                Some((folder, validity, uid)) => by_folder
                    .entry((folder.to_string(), validity))
                    .or_default()
                    .push(uid),
                None => page.failed.push(MessageFailure {
                    id: id.clone(),
                    why: "not an id this plugin gave".into(),
                }),
            }
        }
        for ((folder, validity), uids) in by_folder {
            let state = FolderState {
                name: folder.clone(),
                validity,
                top: 0,
                below: 0,
                modseq: 0,
            };
            let gone = |why: &str, uids: &[u32]| -> Vec<MessageFailure> {
                uids.iter()
                    .map(|uid| MessageFailure {
                        id: message_id(&folder, validity, *uid),
                        why: why.to_string(),
                    })
                    .collect()
            };
            match self.client.examine(&folder, None).map_err(err)? {
                Some(o) if o.uidvalidity == validity => {}
                Some(_) => {
                    page.failed
                        .extend(gone("the folder was recreated since", &uids));
                    continue;
                }
                None => {
                    page.failed
                        .extend(gone("the folder no longer exists", &uids));
                    continue;
                }
            }
            let tag = self.client.send_fetch(&uids, true).map_err(err)?;
            let result = self.client.read_fetch(&tag).map_err(err)?;
            let got: HashSet<u32> = result.messages.iter().map(|m| m.uid).collect();
            let (reason, closed) = (result.reason(), result.outcome.is_err());
            page.messages
                .extend(result.messages.into_iter().map(|m| message(&state, m)));
            let missing: Vec<u32> = uids.into_iter().filter(|u| !got.contains(u)).collect();
            if closed {
                self.client = Client::connect(&self.settings)?;
            }
            page.failed.extend(gone(
                &format!("no longer on the server ({reason})"),
                &missing,
            ));
        }
        Ok(page)
    }

    /// End the run.
    pub fn close(self) {
        self.client.logout();
    }
}

fn too_large(state: &FolderState, uid: u32) -> MessageFailure {
    MessageFailure {
        id: message_id(&state.name, state.validity, uid),
        why: format!("larger than {} MB", MAX_MESSAGE >> 20),
    }
}

fn message(state: &FolderState, m: Fetched) -> Message {
    Message {
        id: message_id(&state.name, state.validity, m.uid),
        thread_id: None,
        folder: state.name.clone(),
        flags: m.flags,
        received_at: m.internal_date,
        raw: m.raw,
    }
}
