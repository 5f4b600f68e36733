//! The scheduler as a pure state machine, driven by a fake model that "samples" a token
//! derived from the sequence id and step. Admission, chunked prefill, preemption and
//! resumption, stop handling, fairness, block accounting, and the prefix cache.

use kiln_engine::output::FinishReason;
use kiln_engine::scheduler::{Scheduler, SchedulerConfig, SchedulerOutput};
use kiln_engine::RequestId;
use kiln_model::SeqLogits;

fn config(num_blocks: usize, max_seqs: usize, budget: usize) -> SchedulerConfig {
    SchedulerConfig {
        max_num_seqs: max_seqs,
        max_num_batched_tokens: budget,
        block_size: 4,
        num_blocks,
        enable_prefix_caching: true,
    }
}

fn prompt(seed: u32, len: usize) -> Vec<u32> {
    (0..len as u32).map(|i| 1000 * seed + i).collect()
}

fn add(s: &mut Scheduler, id: RequestId, prompt: Vec<u32>, max_tokens: usize) {
    let seq = s.new_sequence(id, prompt, max_tokens);
    s.add_request(seq);
}

/// The fake model: every sequence that reached its last token samples `7 + id`.
fn fake_sample(out: &SchedulerOutput) -> Vec<(RequestId, u32)> {
    out.seqs
        .iter()
        .filter(|s| s.sample)
        .map(|s| (s.id, 7 + s.id as u32))
        .collect()
}

/// Steps until nothing is left; returns finish order and reasons.
fn run(s: &mut Scheduler, max_steps: usize) -> Vec<(RequestId, FinishReason)> {
    let mut done = vec![];
    for _ in 0..max_steps {
        if !s.has_work() {
            return done;
        }
        let out = s.schedule();
        assert!(!out.is_empty(), "a step with work scheduled nothing");
        done.extend(s.update_from_output(&out, &fake_sample(&out)));
    }
    panic!("not finished after {max_steps} steps");
}

#[test]
fn admission_respects_the_sequence_limit_and_token_budget() {
    let mut s = Scheduler::new(config(64, 2, 100));
    for id in 0..3 {
        add(&mut s, id, prompt(id as u32, 10), 3);
    }
    let out = s.schedule();
    let ids: Vec<_> = out.seqs.iter().map(|q| q.id).collect();
    assert_eq!(ids, vec![0, 1], "only max_num_seqs run");
    assert_eq!(out.num_tokens, 20);
    assert_eq!((s.num_running(), s.num_waiting()), (2, 1));
    assert!(out
        .seqs
        .iter()
        .all(|q| q.sample && q.logits == SeqLogits::Last));
    s.update_from_output(&out, &fake_sample(&out));
    let out = s.schedule();
    assert_eq!(out.num_tokens, 2, "two decodes, the third still waits");
}

#[test]
fn long_prompts_are_prefilled_in_chunks_mixed_with_decodes() {
    let mut s = Scheduler::new(config(64, 4, 8));
    add(&mut s, 0, prompt(0, 3), 10);
    let out = s.schedule();
    s.update_from_output(&out, &fake_sample(&out));
    add(&mut s, 1, prompt(1, 20), 2);
    let mut chunks = vec![];
    loop {
        let out = s.schedule();
        let decode = out
            .seqs
            .iter()
            .find(|q| q.id == 0)
            .expect("decode every step");
        assert_eq!(decode.tokens.len(), 1);
        let Some(c) = out.seqs.iter().find(|q| q.id == 1) else {
            break;
        };
        chunks.push((c.start_pos, c.tokens.len(), c.sample, c.logits));
        let done = c.sample;
        s.update_from_output(&out, &fake_sample(&out));
        if done {
            break;
        }
    }
    use SeqLogits::*;
    assert_eq!(
        chunks,
        vec![
            (0, 7, false, None),
            (7, 7, false, None),
            (14, 6, true, Last)
        ],
        "budget 8 = 1 decode + 7 prefill tokens per step"
    );
}

#[test]
fn preempted_sequences_recompute_and_finish_with_their_tokens() {
    // 6 blocks of 4: two sequences of 8 prompt tokens + 12 new tokens cannot both fit.
    let mut s = Scheduler::new(config(6, 4, 64));
    add(&mut s, 0, prompt(0, 8), 12);
    add(&mut s, 1, prompt(1, 8), 12);
    let mut preempted = vec![];
    let mut finished = vec![];
    for _ in 0..200 {
        if !s.has_work() {
            break;
        }
        let out = s.schedule();
        preempted.extend(out.preempted.iter().copied());
        for q in &out.seqs {
            // A readmitted sequence recomputes everything it had, generated tokens included.
            if q.start_pos == 0 && q.tokens.len() > 8 {
                assert_eq!(q.tokens[..8], prompt(q.id as u32, 8)[..]);
                assert!(q.tokens[8..].iter().all(|&t| t == 7 + q.id as u32));
            }
        }
        finished.extend(s.update_from_output(&out, &fake_sample(&out)));
    }
    assert_eq!(preempted, vec![1], "the newest sequence is preempted");
    assert_eq!(
        finished,
        vec![(0, FinishReason::Length), (1, FinishReason::Length)]
    );
    assert_eq!(s.kv().pool().num_used(), 0, "every block back");
}

#[test]
fn stop_tokens_max_tokens_and_aborts_end_requests() {
    let mut s = Scheduler::new(config(64, 8, 64));
    let mut stopping = s.new_sequence(0, prompt(0, 5), 50);
    stopping.stop_token_ids = vec![7]; // the fake model samples 7 for id 0
    s.add_request(stopping);
    add(&mut s, 1, prompt(1, 5), 3);
    add(&mut s, 2, prompt(2, 5), 50);
    let out = s.schedule();
    let ended = s.update_from_output(&out, &fake_sample(&out));
    assert_eq!(ended, vec![(0, FinishReason::Stop)]);
    assert!(s.finish_request(2), "abort a running request");
    assert!(!s.finish_request(2), "only once");
    assert_eq!(run(&mut s, 10), vec![(1, FinishReason::Length)]);
    assert_eq!(s.kv().pool().num_used(), 0);
}

#[test]
fn first_come_first_served_and_running_sequences_never_starve() {
    // 10 blocks of 4. Request 0 holds 6; request 1 (needs 6) must wait; request 2 (needs
    // 1) arrives later and must not overtake it.
    let mut s = Scheduler::new(config(10, 8, 64));
    add(&mut s, 0, prompt(0, 20), 4);
    let out = s.schedule();
    s.update_from_output(&out, &fake_sample(&out));
    add(&mut s, 1, prompt(1, 21), 2);
    add(&mut s, 2, prompt(2, 2), 2);
    let mut order = vec![];
    for _ in 0..50 {
        if !s.has_work() {
            break;
        }
        let out = s.schedule();
        for q in &out.seqs {
            if q.start_pos == 0 {
                order.push(q.id);
            }
        }
        s.update_from_output(&out, &fake_sample(&out));
    }
    assert_eq!(order, vec![1, 2], "admitted in arrival order");
    assert_eq!(s.kv().pool().num_used(), 0);
}

#[test]
fn block_accounting_returns_to_zero_after_many_requests() {
    let mut s = Scheduler::new(config(40, 6, 32));
    for id in 0..30u64 {
        add(
            &mut s,
            id,
            prompt((id % 7) as u32, 3 + (id as usize * 5) % 23),
            1 + id as usize % 9,
        );
    }
    let done = run(&mut s, 1000);
    assert_eq!(done.len(), 30);
    assert_eq!(s.kv().pool().num_used(), 0);
    assert!(
        s.kv().pool().num_cached() > 0,
        "freed blocks stay cached for reuse"
    );
}

/// Runs one request alone to the end and returns how many prompt tokens were cache hits.
fn cached_tokens_of(s: &mut Scheduler, id: RequestId, p: Vec<u32>) -> usize {
    add(s, id, p, 1);
    let out = s.schedule();
    let hit = out
        .seqs
        .iter()
        .find(|q| q.id == id)
        .map(|q| q.start_pos)
        .unwrap_or(0);
    s.update_from_output(&out, &fake_sample(&out));
    run(s, 10);
    hit
}

#[test]
fn prefix_cache_full_and_partial_hits() {
    let mut s = Scheduler::new(config(32, 4, 64));
    let p = prompt(1, 16);
    assert_eq!(cached_tokens_of(&mut s, 0, p.clone()), 0);
    // Full hit: every full block but the one holding the last token (its logits are needed).
    assert_eq!(cached_tokens_of(&mut s, 1, p.clone()), 12);
    let mut partial = p[..8].to_vec();
    partial.extend(prompt(9, 8));
    assert_eq!(
        cached_tokens_of(&mut s, 2, partial),
        8,
        "shared first two blocks"
    );
    let stats = s.kv();
    assert_eq!((stats.queried_tokens, stats.hit_tokens), (48, 20));
}

#[test]
fn prefix_cache_never_reuses_blocks_across_different_tokens() {
    let mut s = Scheduler::new(config(32, 4, 64));
    let a = prompt(1, 12);
    cached_tokens_of(&mut s, 0, a.clone());
    let mut b = a.clone();
    b[0] += 1; // differs in the first block only: later blocks' tokens are equal
    assert_eq!(cached_tokens_of(&mut s, 1, b), 0);
    let mut c = a.clone();
    c[5] += 1; // same first block, different second
    assert_eq!(cached_tokens_of(&mut s, 2, c), 4);
}

#[test]
fn prefix_cache_evicts_under_pressure() {
    let mut s = Scheduler::new(config(8, 4, 64));
    let a = prompt(1, 16);
    cached_tokens_of(&mut s, 0, a.clone()); // 4 blocks, then freed (still cached)
    assert_eq!(s.kv().pool().num_cached(), 4);
    // 7 blocks: the 4 never used, then a's, tail first, so a's first block survives.
    cached_tokens_of(&mut s, 1, prompt(2, 28));
    assert_eq!(
        cached_tokens_of(&mut s, 2, a.clone()),
        4,
        "a's head outlives its tail"
    );
    cached_tokens_of(&mut s, 3, prompt(3, 32)); // all 8 blocks: nothing of a is left
    assert_eq!(cached_tokens_of(&mut s, 4, a), 0, "a's blocks were evicted");
    assert_eq!(s.kv().pool().num_used(), 0);
}

#[test]
fn prompt_logits_are_returned_for_every_prompt_chunk() {
    let mut s = Scheduler::new(config(32, 4, 6));
    let mut seq = s.new_sequence(0, prompt(0, 10), 1);
    seq.prompt_logits_from = Some(0);
    s.add_request(seq);
    let out = s.schedule();
    assert_eq!(
        (out.seqs[0].tokens.len(), out.seqs[0].logits),
        (6, SeqLogits::Tail(6))
    );
    s.update_from_output(&out, &fake_sample(&out));
    let out = s.schedule();
    assert_eq!(
        (
            out.seqs[0].tokens.len(),
            out.seqs[0].logits,
            out.seqs[0].sample
        ),
        (4, SeqLogits::Tail(4), true)
    );
}

#[test]
fn scored_prompts_take_only_their_unscored_head_from_the_prefix_cache() {
    let mut s = Scheduler::new(config(32, 4, 64));
    let p = prompt(1, 16);
    cached_tokens_of(&mut s, 0, p.clone());
    let scored = |s: &mut Scheduler, id: RequestId, from: usize| {
        let mut seq = s.new_sequence(id, p.clone(), 1);
        seq.prompt_logits_from = Some(from);
        s.add_request(seq);
        let out = s.schedule();
        let q = &out.seqs[0];
        let got = (q.start_pos, q.tokens.len(), q.logits);
        s.update_from_output(&out, &fake_sample(&out));
        run(s, 10);
        got
    };
    // Logits from position 9 on: two 4-token blocks (8 tokens) may come from the cache,
    // position 8 is computed without logits, 9..15 with.
    assert_eq!(scored(&mut s, 1, 9), (8, 8, SeqLogits::Tail(7)));
    // From position 8: still 8 cached, every computed position has logits.
    assert_eq!(scored(&mut s, 2, 8), (8, 8, SeqLogits::Tail(8)));
    // The whole prompt scored: nothing from the cache.
    assert_eq!(scored(&mut s, 3, 0), (0, 16, SeqLogits::Tail(16)));
}
