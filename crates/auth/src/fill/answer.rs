//! Steps 4 to 6 of a fill job (see the module docs of `fill`): the server's and the store's
//! answers handed in, and the answer stored: swapped in on the claim, written back until the
//! store holds it, or a refusal marked.

use super::*;

impl FillJob {
    /// Stores the server's answer: on the claim's version the first time, then (written back
    /// after a failure) on whatever the store holds, unless it holds a newer grant.
    pub(super) fn store_answer(&mut self, now: Now) -> Step {
        let Some(answer) = self.answer.clone() else {
            return self.done(Err(misuse("no answer to store")));
        };
        if matches!(self.purpose, Purpose::ClientCredentials) {
            return self.done(Ok(answer));
        }
        let record = self.record.clone().unwrap_or_default();
        let stored = record.tokens.as_ref().and_then(|t| t.refresh_token.as_ref());
        if self.writes_back() && stored.is_some() && stored == answer.refresh_token.as_ref() {
            // Our write landed (its answer was lost), or another instance adopted it already.
            self.stored_version = Some(record.version);
            self.store_error = None;
            return self.done(Ok(answer));
        }
        let spent = |t: &RefreshToken| match &self.purpose {
            Purpose::Refresh(held) => held.refresh() == Some(t) || held.spent(t),
            Purpose::Check(held) => held.spent(t),
            _ => false,
        };
        if self.delivered
            && let Some(tokens) = &record.tokens
            && record.version > self.answer_version
            && !tokens.refresh_token.as_ref().is_some_and(spent)
        {
            // A newer grant (a sign-in elsewhere) replaced the one this answer continues.
            if tokens.refused {
                return self.done(Err(refused_elsewhere()));
            }
            tracing::info!(target: "helloflex::token", "a newer sign-in replaced these tokens; adopting it");
            self.stored_version = Some(record.version);
            self.store_error = None;
            return self.done(Ok(tokens.to_set_at(now.at, now.wall)));
        }
        let mut new = record.clone();
        new.version = record.version.max(self.answer_version.saturating_sub(1)) + 1;
        self.answer_version = new.version;
        new.tokens = Some(StoredTokens::from_set_at(&answer, now.at, now.wall));
        new.claim = None;
        self.swap(Write::Answer, new)
    }

    /// After `invalid_grant`: adopt a winner, or mark the still-stored token refused.
    pub(super) fn refused(&mut self, now: Now, error: Error) -> Step {
        let Purpose::Refresh(held) = &self.purpose else { return self.done(Err(error)) };
        let record = self.record.clone().unwrap_or_default();
        let Some(tokens) = &record.tokens else { return self.done(Err(error)) };
        let stored = tokens.refresh_token.as_ref();
        if stored.is_some() && stored == held.refresh() {
            if tokens.refused || record.claim.as_ref().is_some_and(|c| c.holder != self.holder) {
                return self.done(Err(error));
            }
            let mut tomb = record.clone();
            tomb.version = record.version + 1;
            tomb.claim = None;
            if let Some(t) = &mut tomb.tokens {
                t.refused = true;
            }
            return self.swap(Write::Tombstone(error), tomb);
        }
        if record.version > held.version
            && !tokens.refused
            && !stored.is_some_and(|t| held.spent(t))
        {
            tracing::info!(target: "helloflex::token", "another holder refreshed first; adopting its tokens");
            self.stored_version = Some(record.version);
            return self.done(Ok(tokens.to_set_at(now.at, now.wall)));
        }
        self.done(Err(error))
    }

    /// Gives our claim back after a failed request.
    pub(super) fn release(&mut self, error: Error) -> Step {
        let record = self.record.clone().unwrap_or_default();
        if record.claim.as_ref().is_none_or(|c| c.holder != self.holder) {
            return self.done(Err(error));
        }
        let mut free = record.clone();
        free.version = record.version + 1;
        free.claim = None;
        self.swap(Write::Release(error), free)
    }

    /// The answer of the exchange from [`Step::Fetch`].
    pub(crate) fn handle_fetched(&mut self, now: Now, result: Result<Fetched, Error>) {
        if !matches!(self.awaiting, Awaiting::Fetch) {
            return;
        }
        self.awaiting = Awaiting::Nothing;
        match result {
            Ok(fetched) => {
                let set = fetched.into_token_set(self.default_lifetime);
                if matches!(self.purpose, Purpose::Refresh(_)) {
                    tracing::info!(target: "helloflex::token", rotated = set.rotated, "refresh token grant succeeded");
                }
                let read = Record::version_of(self.record.as_ref());
                self.answer_version = match self.purpose {
                    // A sign-in outranks every version written before it, even by an instance
                    // that remembers more than a store which lost data: at least the wall clock
                    // in milliseconds.
                    Purpose::Authorize { held_version, .. } => {
                        let wall = now.wall.duration_since(std::time::UNIX_EPOCH).map_or(0, millis);
                        (read + 1).max(held_version + 1).max(wall)
                    }
                    _ => read + 1,
                };
                self.answer = Some(set);
                self.stage = Stage::Answer;
                // A sign-in reads what it replaces first; a refresh writes on its claim.
                self.fresh = !matches!(self.purpose, Purpose::Authorize { .. });
                self.store_deadline = later(now.at, self.store_timeout);
            }
            Err(error)
                if error.requires_reauthorization()
                    && matches!(self.purpose, Purpose::Refresh(_)) =>
            {
                self.stage = Stage::Refused(error);
                self.fresh = false;
            }
            Err(error)
                if matches!(
                    self.purpose,
                    Purpose::ClientCredentials | Purpose::Authorize { .. }
                ) =>
            {
                self.end(Err(error));
            }
            Err(error) => self.stage = Stage::Release(error),
        }
    }

    /// The answer to the last [`Step::Store`].
    pub(crate) fn handle_store(&mut self, now: Now, reply: StoreReply) {
        match (std::mem::replace(&mut self.awaiting, Awaiting::Nothing), reply) {
            (Awaiting::Load, StoreReply::Load(Ok(loaded))) => {
                self.contact_since.get_or_insert(now.at);
                self.observe(now, &loaded);
                self.record = loaded.record;
                self.epoch_age = loaded.epoch_age;
                self.fresh = true;
                self.store_deadline = later(now.at, self.store_timeout);
            }
            (Awaiting::Load, StoreReply::Load(Err(error))) => self.store_failed(now, error),
            (Awaiting::Swap(write, new), StoreReply::Swap(result)) => {
                self.written(now, write, *new, result);
            }
            // An answer to a question not asked: ignore it, stay where we were.
            (awaiting, _) => self.awaiting = awaiting,
        }
    }

    /// A successful read: a foreign claim seen unchanged since the last read counts the time
    /// between the two reads towards its budget (only while reads succeed, never the time a
    /// read itself took, and at most [`WATCH_GAP_MAX`] a gap).
    pub(super) fn observe(&mut self, now: Now, loaded: &Loaded) {
        let foreign = loaded.record.as_ref().and_then(|r| {
            let claim = r.claim.as_ref().filter(|c| c.holder != self.holder)?;
            Some((r.version, claim.holder.clone()))
        });
        let gap = self.last_read_end.map(|end| self.read_started.saturating_duration_since(end));
        self.watch = match (foreign, self.watch.take()) {
            (None, _) => None,
            (Some((version, holder)), Some(mut w))
                if w.version == version && w.holder == holder =>
            {
                w.seen = w.seen.saturating_add(gap.unwrap_or_default().min(WATCH_GAP_MAX));
                Some(w)
            }
            (Some((version, holder)), _) => Some(Watch { version, holder, seen: Duration::ZERO }),
        };
        self.last_read_end = Some(now.at);
    }

    /// A store call failed: an answer is written back until the store takes it; anything
    /// else asks again until the store timeout, then fails, typed.
    pub(super) fn store_failed(&mut self, now: Now, error: StoreError) {
        self.fresh = false;
        self.last_read_end = None;
        self.contact_since = None;
        // A record that cannot be read or written as it is: asking again changes nothing.
        if !error.is_transient() {
            return match std::mem::replace(&mut self.stage, Stage::Plan) {
                Stage::Answer => {
                    self.store_error = Some(error);
                    let answer = self.answer.take();
                    self.end(answer.ok_or_else(|| misuse("no answer to store")));
                }
                Stage::Refused(e) | Stage::Release(e) => self.end(Err(e)),
                _ => self.end(Err(error.into())),
            };
        }
        match self.stage {
            // Writing back, or looking at a store that may have lost what this instance holds:
            // ask until the store answers, however long it is away, so that it hears from
            // every live holder within a few seconds of its return.
            Stage::Answer if self.writes_back() => self.ask_again(now, &error),
            Stage::Plan if matches!(self.purpose, Purpose::Check(_)) => self.ask_again(now, &error),
            Stage::Answer => {
                self.store_error = Some(error);
                let answer = self.answer.take();
                self.end(answer.ok_or_else(|| misuse("no answer to store")));
            }
            Stage::Refused(_) | Stage::Release(_) => {
                let stage = std::mem::replace(&mut self.stage, Stage::Plan);
                if let Stage::Refused(e) | Stage::Release(e) = stage {
                    self.end(Err(e));
                }
            }
            _ if now.at >= self.store_deadline => self.end(Err(error.into())),
            _ => {
                tracing::debug!(target: "helloflex::store", %error, "store call failed; asking again");
                self.sleep_until = Some(later(now.at, STORE_RETRY));
            }
        }
    }

    /// Asks the store again after a pause that doubles up to the write-back maximum.
    pub(super) fn ask_again(&mut self, now: Now, error: &StoreError) {
        tracing::debug!(target: "helloflex::store", %error, "the store failed; asking it again");
        self.sleep_until = Some(later(now.at, self.retry));
        self.retry = self.retry.saturating_mul(2).min(self.write_back_max);
    }

    /// The answer to a swap.
    pub(super) fn written(
        &mut self,
        now: Now,
        write: Write,
        new: Record,
        result: Result<Swap, StoreError>,
    ) {
        match result {
            Ok(Swap::Stored { version, epoch_age }) => {
                self.contact_since.get_or_insert(now.at);
                let mut new = new;
                new.version = version;
                self.record = Some(new);
                self.fresh = true;
                self.retry = STORE_RETRY;
                if epoch_age.is_some() {
                    self.epoch_age = epoch_age;
                }
                match write {
                    // The store restarted or rolled back between our read and this write: the
                    // claim may sit on data that lost a newer set. Wait out the grace period.
                    Write::Claim(_)
                        if epoch_age.is_some_and(|age| age < self.grace)
                            && matches!(self.purpose, Purpose::Refresh(_)) =>
                    {
                        self.fresh = false;
                    }
                    Write::Claim(at) => self.stage = Stage::Claimed { at },
                    Write::Mark => self.stage = Stage::Claimed { at: now.at },
                    Write::Answer => {
                        self.stored_version = Some(version);
                        self.store_error = None;
                        let answer = self.answer.take();
                        self.end(answer.ok_or_else(|| misuse("no answer to store")));
                    }
                    Write::Tombstone(e) | Write::Release(e) => self.end(Err(e)),
                }
            }
            Ok(Swap::Conflict) => {
                self.fresh = false;
                match write {
                    Write::Answer if self.writes_back() => self.deliver = true,
                    Write::Answer => {
                        let answer = self.answer.take();
                        self.end(answer.ok_or_else(|| misuse("no answer to store")));
                    }
                    // Someone wrote first: the refusal stands; our claim is gone anyway.
                    Write::Tombstone(e) | Write::Release(e) => self.end(Err(e)),
                    Write::Claim(_) | Write::Mark => {}
                }
            }
            Err(error) => match write {
                Write::Answer => {
                    tracing::error!(target: "helloflex::store", %error, "storing new tokens failed; they are served from memory and written back until the store takes them");
                    self.deliver = self.writes_back();
                    self.store_failed(now, error.clone());
                    if self.writes_back() {
                        self.store_error = Some(error);
                    }
                }
                Write::Mark => self.end(Err(error.into())),
                Write::Tombstone(e) | Write::Release(e) => self.end(Err(e)),
                Write::Claim(_) => self.store_failed(now, error),
            },
        }
    }
}
