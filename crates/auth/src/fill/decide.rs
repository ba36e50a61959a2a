//! Steps 1 to 3 of a fill job (see the module docs of `fill`): what it asks for next, decided
//! on the record it read: adopt, write ours back, wait out another holder's claim, claim, send.

use super::*;

impl FillJob {
    /// The next step.
    pub(crate) fn poll(&mut self, now: Now) -> Step {
        match self.awaiting {
            Awaiting::Nothing => {}
            Awaiting::Sleep => {
                self.awaiting = Awaiting::Nothing;
                self.sleep_until = None;
            }
            Awaiting::Done => {
                return self.done(Err(misuse("a fill job was polled after it finished")));
            }
            _ => {
                return self
                    .done(Err(misuse("a fill job was polled before its step was answered")));
            }
        }
        if let Stage::End(_) = self.stage {
            let Stage::End(result) = std::mem::replace(&mut self.stage, Stage::Plan) else {
                return self.done(Err(misuse("a fill job lost its result")));
            };
            return self.done(result);
        }
        if let Some(until) = self.sleep_until {
            if now.at < until {
                self.awaiting = Awaiting::Sleep;
                return Step::Sleep(until);
            }
            self.sleep_until = None;
        }
        // The answer's first write failed or conflicted: callers get it now, the store later.
        if self.deliver
            && !self.delivered
            && let Some(set) = &self.answer
        {
            self.delivered = true;
            return Step::Deliver(Box::new(set.clone()), self.store_error.clone());
        }
        if let Stage::Claimed { at } = self.stage {
            return self.send(now, at);
        }
        if !self.fresh {
            self.read_started = now.at;
            self.awaiting = Awaiting::Load;
            return Step::Store(StoreOp::Load);
        }
        match std::mem::replace(&mut self.stage, Stage::Plan) {
            Stage::Plan => self.plan(now),
            Stage::Answer => {
                self.stage = Stage::Answer;
                self.store_answer(now)
            }
            Stage::Refused(error) => self.refused(now, error),
            Stage::Release(error) => self.release(error),
            Stage::Claimed { .. } | Stage::End(_) => {
                self.done(Err(misuse("a fill job decided twice")))
            }
        }
    }

    pub(super) fn done(&mut self, result: Result<TokenSet, Error>) -> Step {
        self.awaiting = Awaiting::Done;
        let version = match result {
            Ok(_) => self.stored_version,
            Err(_) => None,
        };
        Step::Done(Outcome {
            result,
            store_error: self.store_error.take(),
            version,
            watch: self.watch.take(),
            unchanged: self.unchanged,
            contact_since: self.contact_since,
        })
    }

    /// Ends a check that found the store in order.
    pub(super) fn unchanged(&mut self) -> Step {
        self.unchanged = true;
        self.done(Err(misuse("a check changes nothing")))
    }

    pub(super) fn end(&mut self, result: Result<TokenSet, Error>) {
        self.stage = Stage::End(result);
    }

    pub(super) fn swap(&mut self, write: Write, new: Record) -> Step {
        let expected = Record::version_of(self.record.as_ref());
        let new = Box::new(new);
        self.awaiting = Awaiting::Swap(write, new.clone());
        Step::Store(StoreOp::Swap { expected, new })
    }

    pub(super) fn wait(&mut self, until: Instant) -> Step {
        self.fresh = false;
        self.sleep_until = Some(until);
        self.awaiting = Awaiting::Sleep;
        Step::Sleep(until)
    }

    /// Whether an unstored answer is written back until stored (a user's grant, which a
    /// refresh may have rotated), rather than reported and left (a client-credentials token
    /// anyone can fetch again).
    pub(super) fn writes_back(&self) -> bool {
        matches!(self.purpose, Purpose::Refresh(_) | Purpose::Authorize { .. } | Purpose::Check(_))
    }

    /// Our claim is stored: send, unless it took so long to land that a watcher could already
    /// be counting our budget out.
    pub(super) fn send(&mut self, now: Now, at: Instant) -> Step {
        let exempt = matches!(self.purpose, Purpose::ClientCredentials | Purpose::Authorize { .. });
        if !exempt && now.at > later(at, self.store_timeout) {
            // A store this slow is not asked again at once: plan again after a pause.
            self.stage = Stage::Plan;
            return self.wait(later(now.at, STORE_RETRY));
        }
        match self.exchange.take() {
            Some(exchange) => {
                self.awaiting = Awaiting::Fetch;
                Step::Fetch(exchange)
            }
            None => self.done(Err(misuse("a fill job had no request to send"))),
        }
    }

    /// Decides, on the fresh record, how to get a token.
    pub(super) fn plan(&mut self, now: Now) -> Step {
        let record = self.record.clone().unwrap_or_default();
        match &self.purpose {
            Purpose::ClientCredentials => {
                self.done(Err(misuse("a client-credentials job read a store")))
            }
            Purpose::Reload(held) => {
                let result = reload(&record, held, now);
                if result.is_ok() {
                    self.stored_version = Some(record.version);
                }
                self.done(result)
            }
            Purpose::Authorize { id, .. } => {
                if record.completed.contains(id) {
                    return self.done(Err(CallbackError::AlreadyCompleted.into()));
                }
                // Written before the code is exchanged: no other instance exchanges it again.
                let mut marked = record.clone();
                marked.completed.push(id.clone());
                let excess = marked.completed.len().saturating_sub(COMPLETED_KEPT);
                marked.completed.drain(..excess);
                marked.version = record.version + 1;
                self.swap(Write::Mark, marked)
            }
            Purpose::SharedClientCredentials { held, .. } => {
                if let Some(tokens) = &record.tokens {
                    let left = tokens.expires_in_at(now.wall);
                    if helloflex_core::machines::live_and_not_held(
                        &tokens.access_token,
                        left,
                        held.iter(),
                    ) {
                        tracing::info!(target: "helloflex::token", "adopting a token another holder stored");
                        self.stored_version = Some(record.version);
                        return self.done(Ok(tokens.to_set_at(now.at, now.wall)));
                    }
                }
                match record.claim.clone().filter(|c| c.holder != self.holder) {
                    Some(claim) if !self.stale(&claim, &record) => self.wait_for(now),
                    _ => self.claim(now, record),
                }
            }
            Purpose::Check(held) | Purpose::Refresh(held) => {
                let checking = matches!(self.purpose, Purpose::Check(_));
                let holds_set = held.set.is_some();
                let verdict = judge(
                    &record,
                    self.record.is_some(),
                    self.epoch_age.is_some(),
                    held,
                    &self.holder,
                    now,
                );
                match verdict {
                    Verdict::Adopt(set) => {
                        tracing::info!(target: "helloflex::token", "adopting tokens another holder stored");
                        self.stored_version = Some(record.version);
                        self.done(Ok(set))
                    }
                    Verdict::Stop(error) => self.done(Err(error)),
                    Verdict::Behind if holds_set => self.write_back(now, record),
                    // A check adopts or writes back, and changes nothing else.
                    Verdict::Behind | Verdict::Free | Verdict::Claimed(_) if checking => {
                        self.unchanged()
                    }
                    // Behind, but only a refresh token held (the access token was dropped after
                    // a 401): refreshing it is the write-back; the answer lands on what is stored.
                    Verdict::Behind => self.claim(now, record),
                    Verdict::Claimed(claim) => {
                        if self.stale(&claim, &record) {
                            tracing::warn!(target: "helloflex::store", budget_ms = claim.budget_ms, "taking over a claim unchanged for its whole budget");
                            self.claim(now, record)
                        } else {
                            self.wait_for(now)
                        }
                    }
                    Verdict::Free => self.claim(now, record),
                }
            }
        }
    }

    /// The store lost the held set (or rolled back past it): write it back, as persistently as
    /// an answer the store has not taken (it is the grant's only continuation the store could
    /// have). The cache keeps it meanwhile; the write-back runs apart from callers.
    pub(super) fn write_back(&mut self, now: Now, record: Record) -> Step {
        let (Purpose::Refresh(held) | Purpose::Check(held)) = &self.purpose else {
            return self.done(Err(misuse("only a holder writes back")));
        };
        let Some(set) = held.set.clone() else {
            return self.done(Err(misuse("a refresh held no tokens")));
        };
        tracing::warn!(target: "helloflex::store", stored = record.version, held = held.version, "the store is behind the tokens held here; writing them back");
        self.answer_version = record.version.max(held.version) + 1;
        self.answer = Some(set.to_set_at(now.at, now.wall));
        self.stage = Stage::Answer;
        self.deliver = true;
        self.poll(now)
    }

    /// Claims the refresh token on `record`, unless the store is in its grace period.
    pub(super) fn claim(&mut self, now: Now, record: Record) -> Step {
        if now.at > self.plan_deadline {
            let waited = now.at.saturating_duration_since(self.started);
            return self.done(Err(busy(waited)));
        }
        // A store that can lose data: after its restart, and after this instance's own loss of
        // contact, the holders of newer sets get the time to write them back.
        let settle = self.write_back_max.saturating_mul(CONTACT_SETTLE_PAUSES);
        let settling = self
            .contact_since
            .map_or(settle, |since| settle.saturating_sub(now.at.saturating_duration_since(since)));
        if let Some(age) = self.epoch_age
            && (age < self.grace || !settling.is_zero())
            && matches!(self.purpose, Purpose::Refresh(_))
        {
            let resume = later(now.at, self.grace.saturating_sub(age).max(settling));
            if resume > self.plan_deadline {
                let detail = format!(
                    "the store restarted {} ms ago; refreshes wait out its grace period",
                    millis(age)
                );
                let error = StoreError::new("claim", StoreErrorKind::Recovering, detail);
                return self.done(Err(error.into()));
            }
            // Read meanwhile, at the pace holders write back: a set another holder writes
            // back or refreshes is adopted soon after it lands, not when the pause ends.
            return self.wait(resume.min(later(now.at, self.write_back_max)));
        }
        let mut claimed = record.clone();
        claimed.version = record.version + 1;
        claimed.claim = Some(Claim::new(self.holder.clone(), self.budget));
        // An empty record (deleted on purpose) is claimed with the tokens being refreshed.
        if let (None, Purpose::Refresh(held)) = (&claimed.tokens, &self.purpose) {
            claimed.tokens = held.set.clone();
        }
        self.swap(Write::Claim(now.at), claimed)
    }

    /// Waits for another holder's claim: its set may land, or its budget run out.
    pub(super) fn wait_for(&mut self, now: Now) -> Step {
        let next = later(now.at, CLAIM_POLL);
        if next > self.plan_deadline {
            let waited = now.at.saturating_duration_since(self.started);
            return self.done(Err(busy(waited)));
        }
        self.wait(next)
    }

    /// Whether `claim` was watched unchanged for long enough: a refresh token's claim for its
    /// whole budget (presenting it early could be a reuse), a client-credentials claim for the
    /// store timeout (taking it over early costs one more token request, nothing else).
    pub(super) fn stale(&self, claim: &Claim, record: &Record) -> bool {
        let enough = match self.purpose {
            Purpose::SharedClientCredentials { .. } => claim_budget(claim).min(self.store_timeout),
            _ => claim_budget(claim),
        };
        self.watch.as_ref().is_some_and(|w| {
            w.version == record.version && w.holder == claim.holder && w.seen >= enough
        })
    }
}

/// A refresh's comparison of the fresh record with what it holds (`exists`: a record was
/// found at all; `loses_data`: the store can lose data on its own, it reports an epoch).
pub(super) fn judge(
    record: &Record,
    exists: bool,
    loses_data: bool,
    held: &Held,
    holder: &str,
    now: Now,
) -> Verdict {
    let Some(tokens) = record.tokens.as_ref().filter(|_| exists) else {
        return if exists && record.version > held.version {
            // Nothing stored at a version past ours: signed out.
            Verdict::Stop(nothing_stored())
        } else if loses_data {
            // The store lost it.
            Verdict::Behind
        } else {
            // Deleted on purpose (a store that loses nothing on its own): no write-back; a
            // refresh claims the empty record and stores its answer there.
            Verdict::Free
        };
    };
    let stored = tokens.refresh_token.as_ref();
    if stored.is_some() && stored == held.refresh() {
        if tokens.refused {
            return Verdict::Stop(refused_elsewhere());
        }
        return match record.claim.clone() {
            Some(claim) if claim.holder != holder => Verdict::Claimed(claim),
            _ => Verdict::Free,
        };
    }
    if stored.is_some_and(|t| held.spent(t)) {
        return Verdict::Behind;
    }
    if record.version > held.version {
        if tokens.refused {
            return Verdict::Stop(refused_elsewhere());
        }
        return Verdict::Adopt(tokens.to_set_at(now.at, now.wall));
    }
    Verdict::Behind
}

/// A reload: what is stored, unless it is refused, spent, or older than what this instance
/// held.
pub(super) fn reload(record: &Record, held: &Held, now: Now) -> Result<TokenSet, Error> {
    let tokens = record.tokens.as_ref().ok_or_else(nothing_stored)?;
    if tokens.refused
        || tokens.refresh_token.as_ref().is_some_and(|t| held.spent(t))
        || record.version < held.version
    {
        return Err(refused_elsewhere());
    }
    Ok(tokens.to_set_at(now.at, now.wall))
}
