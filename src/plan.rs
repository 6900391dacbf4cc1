//! The planner: which ready requests travel together in the next batch.

use std::collections::VecDeque;

use crate::dialect::arm::MAX_ITEMS_WITH_BODY as ARM_MAX_ITEMS_WITH_BODY;

/// How large a batch may be.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Items.
    pub items: usize,
    /// Bytes of the batch request body (about: items' [`Size::bytes`] summed).
    pub bytes: usize,
}

/// What one item adds to a batch.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// It has a body.
    pub body: bool,
    /// About how many bytes it adds.
    pub bytes: usize,
}

/// Bytes of the batch envelope around its items.
const ENVELOPE_BYTES: usize = 32;

/// Takes the next batch off the front of `ready`, in order: at most
/// `limits.items` items and `limits.bytes` bytes (one item alone may be more:
/// it goes by itself), and at most [`ARM_MAX_ITEMS_WITH_BODY`] when any item
/// has a body; all of one `kind` (Graph's version: a batch goes to one
/// version's endpoint). `admit` may refuse an item (its throttle scope is
/// paused); a refused item leaves the queue and is the caller's to keep.
pub fn next_batch<K: PartialEq>(
    ready: &mut VecDeque<usize>,
    limits: Limits,
    size: impl Fn(usize) -> Size,
    kind: impl Fn(usize) -> K,
    mut admit: impl FnMut(usize) -> bool,
) -> Vec<usize> {
    let mut batch = Vec::with_capacity(limits.items.min(ready.len()));
    let (mut any_body, mut bytes) = (false, ENVELOPE_BYTES);
    let mut batch_kind = None;
    while let Some(&next) = ready.front() {
        if batch.len() >= limits.items {
            break;
        }
        let k = kind(next);
        if batch_kind.as_ref().is_some_and(|b| *b != k) {
            break;
        }
        let s = size(next);
        if batch.len() >= ARM_MAX_ITEMS_WITH_BODY && (any_body || s.body) {
            break;
        }
        if !batch.is_empty() && bytes + s.bytes > limits.bytes {
            break;
        }
        ready.pop_front();
        if !admit(next) {
            continue;
        }
        any_body |= s.body;
        bytes += s.bytes;
        batch_kind.get_or_insert(k);
        batch.push(next);
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(_: usize) {}

    fn all(_: usize) -> bool {
        true
    }

    fn items(n: usize) -> Limits {
        Limits {
            items: n,
            bytes: usize::MAX,
        }
    }

    fn no_body(_: usize) -> Size {
        Size {
            body: false,
            bytes: 100,
        }
    }

    fn body_at(i: usize) -> impl Fn(usize) -> Size {
        move |j| Size {
            body: j == i,
            bytes: 100,
        }
    }

    #[test]
    fn cuts_by_bytes_too_and_sends_an_oversized_item_alone() {
        let sizes = [400, 400, 400, 1500, 100, 100];
        let size = |i: usize| Size {
            body: true,
            bytes: sizes[i],
        };
        let mut ready: VecDeque<usize> = (0..6).collect();
        let limits = Limits {
            items: 20,
            bytes: 1000,
        };
        let got: Vec<Vec<usize>> =
            std::iter::from_fn(|| Some(next_batch(&mut ready, limits, size, one, all)))
                .take_while(|b| !b.is_empty())
                .collect();
        assert_eq!(got, [vec![0, 1], vec![2], vec![3], vec![4, 5]]);
    }

    #[test]
    fn cuts_in_order_up_to_the_size() {
        let mut ready: VecDeque<usize> = (0..45).collect();
        let sizes: Vec<usize> =
            std::iter::from_fn(|| Some(next_batch(&mut ready, items(20), no_body, one, all)))
                .take_while(|b| !b.is_empty())
                .map(|b| b.len())
                .collect();
        assert_eq!(sizes, [20, 20, 5]);
        let mut ready: VecDeque<usize> = (0..3).collect();
        assert_eq!(next_batch(&mut ready, items(2), no_body, one, all), [0, 1]);
    }

    #[test]
    fn refused_items_leave_the_queue_without_taking_a_place() {
        let mut ready: VecDeque<usize> = (0..10).collect();
        assert_eq!(
            next_batch(&mut ready, items(3), no_body, one, |i| i % 2 == 0),
            [0, 2, 4]
        );
        assert_eq!(ready.front(), Some(&5));
    }

    #[test]
    fn a_batch_holds_one_kind() {
        // Graph's versions: a batch goes to one version's endpoint.
        let kinds = ["v1", "v1", "beta", "v1", "beta", "beta"];
        let mut ready: VecDeque<usize> = (0..6).collect();
        let got: Vec<Vec<usize>> = std::iter::from_fn(|| {
            Some(next_batch(
                &mut ready,
                items(20),
                no_body,
                |i| kinds[i],
                all,
            ))
        })
        .take_while(|b| !b.is_empty())
        .collect();
        assert_eq!(got, [vec![0, 1], vec![2], vec![3], vec![4, 5]]);
    }

    #[test]
    fn batches_with_bodies_stay_at_twenty() {
        let mut ready: VecDeque<usize> = (0..100).collect();
        assert_eq!(
            next_batch(&mut ready, items(100), body_at(30), one, all).len(),
            30,
            "body item would be the 31st"
        );
        let b = next_batch(&mut ready, items(100), body_at(30), one, all);
        assert_eq!((b.len(), b[0]), (20, 30));
        assert_eq!(
            next_batch(&mut ready, items(100), no_body, one, all).len(),
            50
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the sizes and limits: every item in exactly one batch, in
        /// order; no batch over the count, over the bytes (unless it is one
        /// item alone), or over 20 items once one has a body.
        #[test]
        fn every_item_once_in_order_within_the_limits(
            items in proptest::collection::vec((any::<bool>(), 1usize..5_000), 0..300),
            max_items in 1usize..60,
            max_bytes in 100usize..20_000,
        ) {
            let size = |i: usize| Size { body: items[i].0, bytes: items[i].1 };
            let limits = Limits { items: max_items, bytes: max_bytes };
            let mut ready: VecDeque<usize> = (0..items.len()).collect();
            let mut seen = vec![];
            while !ready.is_empty() {
                let b = next_batch(&mut ready, limits, size, |_| (), |_| true);
                prop_assert!(!b.is_empty(), "progress on every call");
                prop_assert!(b.len() <= max_items);
                if b.iter().any(|&i| items[i].0) {
                    prop_assert!(b.len() <= ARM_MAX_ITEMS_WITH_BODY);
                }
                let bytes: usize = b.iter().map(|&i| items[i].1).sum::<usize>() + ENVELOPE_BYTES;
                prop_assert!(b.len() == 1 || bytes <= max_bytes, "{b:?}: {bytes} bytes");
                seen.extend(b);
            }
            prop_assert_eq!(seen, (0..items.len()).collect::<Vec<_>>());
        }
    }
}
