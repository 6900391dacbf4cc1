//! The planner: which ready requests travel together in the next batch.

use std::collections::VecDeque;

use crate::limits::ARM_MAX_ITEMS_WITH_BODY;

/// Takes the next batch off the front of `ready`, in order: at most `size`
/// items, and at most [`ARM_MAX_ITEMS_WITH_BODY`] when any item has a body.
/// `admit` may refuse an item (its throttle scope is paused); a refused item
/// leaves the queue and is the caller's to keep.
pub fn next_batch(
    ready: &mut VecDeque<usize>,
    size: usize,
    has_body: impl Fn(usize) -> bool,
    mut admit: impl FnMut(usize) -> bool,
) -> Vec<usize> {
    let mut batch = Vec::with_capacity(size.min(ready.len()));
    let mut any_body = false;
    while let Some(&next) = ready.front() {
        if batch.len() >= size {
            break;
        }
        let body = has_body(next);
        if batch.len() >= ARM_MAX_ITEMS_WITH_BODY && (any_body || body) {
            break;
        }
        ready.pop_front();
        if !admit(next) {
            continue;
        }
        any_body |= body;
        batch.push(next);
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(_: usize) -> bool {
        true
    }

    #[test]
    fn cuts_in_order_up_to_the_size() {
        let mut ready: VecDeque<usize> = (0..45).collect();
        let sizes: Vec<usize> =
            std::iter::from_fn(|| Some(next_batch(&mut ready, 20, |_| false, all)))
                .take_while(|b| !b.is_empty())
                .map(|b| b.len())
                .collect();
        assert_eq!(sizes, [20, 20, 5]);
        let mut ready: VecDeque<usize> = (0..3).collect();
        assert_eq!(next_batch(&mut ready, 2, |_| false, all), [0, 1]);
    }

    #[test]
    fn refused_items_leave_the_queue_without_taking_a_place() {
        let mut ready: VecDeque<usize> = (0..10).collect();
        assert_eq!(
            next_batch(&mut ready, 3, |_| false, |i| i % 2 == 0),
            [0, 2, 4]
        );
        assert_eq!(ready.front(), Some(&5));
    }

    #[test]
    fn batches_with_bodies_stay_at_twenty() {
        let mut ready: VecDeque<usize> = (0..100).collect();
        assert_eq!(
            next_batch(&mut ready, 100, |i| i == 30, all).len(),
            30,
            "body item would be the 31st"
        );
        let b = next_batch(&mut ready, 100, |i| i == 30, all);
        assert_eq!((b.len(), b[0]), (20, 30));
        assert_eq!(next_batch(&mut ready, 100, |_| false, all).len(), 50);
    }
}
