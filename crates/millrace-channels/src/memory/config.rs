use millrace_core::Props;
use std::time::Duration;

/// Settings of the `memory` channel, under Flume's property names.
#[derive(Debug, Clone)]
pub struct MemoryChannelConfig {
    /// `capacity` (default 100): the most events the channel holds.
    pub capacity: usize,
    /// `transactionCapacity` (default 100): the most events one put or take carries.
    pub transaction_capacity: usize,
    /// `keep-alive` (seconds, default 3): how long a put waits for room.
    pub keep_alive: Duration,
    /// `byteCapacity` (bytes, default unlimited; 0 is unlimited too, as in Flume) less
    /// `byteCapacityBufferPercentage` (default 20) percent, counted over bodies and
    /// headers. Flume's default is 80% of
    /// the JVM heap; millrace has no heap limit to derive it from, so none is set.
    pub byte_capacity: Option<usize>,
}

impl Default for MemoryChannelConfig {
    fn default() -> Self {
        MemoryChannelConfig {
            capacity: 100,
            transaction_capacity: 100,
            keep_alive: Duration::from_secs(3),
            byte_capacity: None,
        }
    }
}

impl MemoryChannelConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let capacity = p.positive("capacity", 100) as usize;
        let transaction_capacity = p.positive("transactionCapacity", 100) as usize;
        let keep_alive = p.seconds("keep-alive", 3);
        let byte_capacity = byte_capacity(p);
        if transaction_capacity > capacity {
            p.error_at(
                "transactionCapacity",
                format!(
                    "`{}` = {transaction_capacity} is larger than `{}` = {capacity}; lower transactionCapacity or raise capacity",
                    p.full_key("transactionCapacity"),
                    p.full_key("capacity")
                ),
            );
        }
        if p.has_errors() {
            return None;
        }
        Some(MemoryChannelConfig {
            capacity,
            transaction_capacity,
            keep_alive,
            byte_capacity,
        })
    }
}

/// `byteCapacity` less `byteCapacityBufferPercentage`; None for no limit, which is
/// also what `byteCapacity = 0` means in Flume.
pub(crate) fn byte_capacity(p: &Props) -> Option<usize> {
    let byte_capacity = p
        .optional("byteCapacity", "unlimited")
        .map(|_| p.u64_in("byteCapacity", 0, 0, i64::MAX as u64))
        .filter(|&b| b > 0);
    let buffer_pct = p.u64_in("byteCapacityBufferPercentage", 20, 0, 99);
    let bytes = byte_capacity.map(|b| (b as u128 * (100 - buffer_pct) as u128 / 100) as usize)?;
    // Flume counts bytes in slots of 100 and takes a limit of less than one slot as
    // no limit; a limit that small would refuse every event anyway.
    if bytes < 100 {
        p.warn_at(
            "byteCapacity",
            format!(
                "`{}` leaves {bytes} bytes after byteCapacityBufferPercentage, less than Flume's smallest unit of 100; as in Flume, the channel has no byte limit",
                p.full_key("byteCapacity")
            ),
        );
        return None;
    }
    Some(bytes)
}
