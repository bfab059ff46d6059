//! The order status state machine.
//!
//! ```text
//! created ──► confirmed ──► shipped ──► delivered
//!    │  ╲         │  ╲
//!    │   ╲        │   ╲
//!    ▼    ▼       ▼    ▼
//! cancelled  voided (compensation: the order never counted, e.g. SAP rejected it)
//! ```
//! Cancellation (by the customer) and voiding (by the migration machinery) are allowed only
//! before shipping. `delivered`, `cancelled` and `voided` are final.

use serde::{Deserialize, Serialize};

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Accepted, not yet confirmed.
    Created,
    /// Confirmed for fulfilment.
    Confirmed,
    /// Handed to the carrier.
    Shipped,
    /// Received by the customer (final).
    Delivered,
    /// Cancelled by the customer or business (final).
    Cancelled,
    /// Compensated: the order was never valid in the system of record (final).
    Voided,
}

/// A refused status change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an order in status {from} cannot move to {to}")]
pub struct TransitionError {
    /// The current status.
    pub from: OrderStatus,
    /// The requested status.
    pub to: OrderStatus,
}

impl OrderStatus {
    /// All statuses, in lifecycle order.
    pub const ALL: [OrderStatus; 6] = [
        Self::Created,
        Self::Confirmed,
        Self::Shipped,
        Self::Delivered,
        Self::Cancelled,
        Self::Voided,
    ];

    /// The wire and database name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Confirmed => "confirmed",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::Voided => "voided",
        }
    }

    /// Whether no further transition is possible.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Delivered | Self::Cancelled | Self::Voided)
    }

    /// Whether the state machine allows `self → to`.
    pub fn can_move_to(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (Created, Confirmed)
                | (Confirmed, Shipped)
                | (Shipped, Delivered)
                | (Created | Confirmed, Cancelled)
                | (Created | Confirmed, Voided)
        )
    }

    /// The status after moving to `to`, or why that is not allowed.
    pub fn transition_to(self, to: OrderStatus) -> Result<OrderStatus, TransitionError> {
        if self.can_move_to(to) {
            Ok(to)
        } else {
            Err(TransitionError { from: self, to })
        }
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for OrderStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown status {s:?}; expected one of {}",
                    Self::ALL.map(Self::as_str).join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::{self, *};

    #[test]
    fn the_happy_path_runs_from_created_to_delivered() {
        let mut s = Created;
        for next in [Confirmed, Shipped, Delivered] {
            s = s.transition_to(next).unwrap();
        }
        assert!(s.is_final());
    }

    #[test]
    fn only_early_orders_can_be_cancelled_or_voided() {
        for from in OrderStatus::ALL {
            let early = matches!(from, Created | Confirmed);
            assert_eq!(from.can_move_to(Cancelled), early, "{from}");
            assert_eq!(from.can_move_to(Voided), early, "{from}");
        }
    }

    #[test]
    fn final_statuses_allow_nothing() {
        for from in OrderStatus::ALL.into_iter().filter(|s| s.is_final()) {
            for to in OrderStatus::ALL {
                assert!(from.transition_to(to).is_err(), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in OrderStatus::ALL {
            assert_eq!(s.as_str().parse::<OrderStatus>().unwrap(), s);
        }
        assert!("archived".parse::<OrderStatus>().is_err());
    }
}
