//! A chain with state runs a batch again record by record when a record
//! failed in a call that wrote state: each record's writes are then held
//! in a layer of their own, kept when the record went through the whole
//! chain and dropped with its outputs when it failed. Stream time is put
//! back to the batch's start, so the re-run reads the times the first
//! run read.

use super::{Admit, ChainInstance, ChainOutput, ChainRecord, RecordFailure, Stage};
use crate::record::{Batch, RecordParts, TimestampType};
use crate::runtime::Failure;
use crate::state::Pending;
use std::time::Instant;

impl ChainInstance {
    pub(super) fn run_stateful<'a>(
        &mut self,
        input: &'a Batch,
        until: Option<Instant>,
        isolate: bool,
        admit: &Admit<'_>,
    ) -> ChainOutput<'a> {
        let times: Vec<Option<i64>> = self
            .stages
            .iter_mut()
            .map(|s| s.state_mut().map(|state| state.stream_time()))
            .collect();
        if !isolate {
            for stage in &mut self.stages {
                stage.take_wrote();
            }
            let out = self.run_stages(input, until, false);
            // Every stage's flag is taken, whichever wrote.
            let mut wrote = false;
            for stage in &mut self.stages {
                wrote |= stage.take_wrote();
            }
            // Only a batch that wrote has writes to tell apart; a call that
            // failed and was run again record by record may have written
            // before failing, besides those runs.
            if !wrote
                || (!out.isolated
                    && out.failures.is_empty()
                    && out.done == input.len() as u32
                    && out.records().all(|r| admit(&r).is_none()))
            {
                return out;
            }
            for (stage, time) in self.stages.iter_mut().zip(&times) {
                if let (Some(state), Some(time)) = (stage.state_mut(), time) {
                    state.pending().discard_open();
                    state.rewind_stream_time(*time);
                }
            }
        }
        self.run_records(input, until, admit)
    }

    fn each_pending(&mut self, f: impl Fn(&mut Pending)) {
        for stage in &mut self.stages {
            if let Some(state) = stage.state_mut() {
                f(state.pending());
            }
        }
    }

    /// Runs each record of `input` alone through the whole chain, its
    /// state writes in a layer of their own. Past `until` (at least one
    /// record is run), the records left are for the next run.
    fn run_records(
        &mut self,
        input: &Batch,
        until: Option<Instant>,
        admit: &Admit<'_>,
    ) -> ChainOutput<'static> {
        let mut merged = Stage::with_routes(Vec::new());
        let mut failures: Vec<RecordFailure> = Vec::new();
        let mut done = input.len() as u32;
        for (i, record) in input.iter().enumerate() {
            let index = i as u32;
            if i > 0 && until.is_some_and(|t| Instant::now() >= t) {
                done = index;
                break;
            }
            let mut single = Batch::default();
            if single.push(&record).is_err() {
                // As `isolate_records`: only a batch whose spans share
                // bytes can hold a record larger than the layout.
                failures.push(self.too_large(index));
                continue;
            }
            self.each_pending(Pending::begin_record);
            let out = self.run_stages(&single, None, true);
            if let Some(first) = out.failures.first() {
                self.each_pending(Pending::drop_record);
                failures.push(RecordFailure {
                    index,
                    ..first.clone()
                });
                continue;
            }
            if let Some(refusal) = out.records().find_map(|r| admit(&r)) {
                self.each_pending(Pending::drop_record);
                // The last plugin's outputs are the ones produced.
                let last = self.stages.last().expect("a chain with state has a plugin");
                failures.push(super::failure(last, index, refusal));
                continue;
            }
            self.each_pending(Pending::keep_record);
            for r in out.records() {
                if merged.push_record(index, &r).is_err() {
                    failures.push(self.too_large(index));
                }
            }
        }
        failures.dedup_by_key(|f| f.index);
        ChainOutput {
            stage: merged,
            last: None,
            failures,
            done,
            isolated: false,
        }
    }

    /// A record larger than the batch layout holds.
    fn too_large(&self, index: u32) -> RecordFailure {
        let first = self
            .stages
            .first()
            .expect("a chain with state has a plugin");
        let limit = u32::MAX as usize;
        super::failure(first, index, Failure::OutputLimit { limit })
    }
}

impl Stage<'static> {
    /// Appends a record a chain run made from input record `origin`.
    fn push_record(
        &mut self,
        origin: u32,
        r: &ChainRecord<'_>,
    ) -> Result<(), crate::record::LayoutError> {
        let (timestamp, timestamp_type) = match r.timestamp {
            Some(t) => (t, TimestampType::CreateTime),
            None => (-1, TimestampType::NotAvailable),
        };
        let parts = RecordParts {
            key: r.key,
            value: r.value,
            timestamp,
            timestamp_type,
            topic: r.source_topic,
            partition: r.partition,
            offset: r.offset,
        };
        self.records.to_mut().push_parts(parts, r.headers.iter())?;
        self.origin.push(origin);
        let route = r.topic.map(|t| super::intern(&mut self.routes, t));
        self.route.push(route);
        Ok(())
    }
}
