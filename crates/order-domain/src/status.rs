//! The order status state machine.
//!
//! ```text
//! created ──► confirmed ──► shipped ──► delivered ──► billed
//!    │  ╲         │  ╲
//!    │   ╲        │   ╲
//!    ▼    ▼       ▼    ▼
//! cancelled  voided (compensation: the order never counted, e.g. SAP rejected it)
//! ```
//! Cancellation (by the customer) and voiding (by the migration machinery) are allowed only
//! before shipping. `billed`, `cancelled` and `voided` are final.
//!
//! SAP runs fulfilment while it is the system of record, and reports what it did as facts
//! ([`OrderStatus::apply_report`]): delivered (goods issue) and billed. SAP knows nothing of our
//! `confirmed`/`shipped`, so a report may skip them; a report of a status the order already
//! has (or has passed: delivered on a billed order) changes nothing, so reports can be
//! repeated safely.

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
    /// Delivered: SAP's goods issue is posted (delivery status C).
    Delivered,
    /// Billed: SAP created the billing document (final).
    Billed,
    /// Cancelled by the customer or business (final).
    Cancelled,
    /// Compensated: the order was never valid in the system of record (final).
    Voided,
}

/// What a status report from SAP does to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusReport {
    /// The order moves to this status.
    Applied(OrderStatus),
    /// The order already has the status (or a later one): nothing changes.
    AlreadyThere,
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
    pub const ALL: [OrderStatus; 7] = [
        Self::Created,
        Self::Confirmed,
        Self::Shipped,
        Self::Delivered,
        Self::Billed,
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
            Self::Billed => "billed",
            Self::Cancelled => "cancelled",
            Self::Voided => "voided",
        }
    }

    /// Whether no further transition is possible.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Billed | Self::Cancelled | Self::Voided)
    }

    /// Whether the order's lines and header may still be changed by a shop: only before
    /// shipping (`created`, `confirmed`).
    pub fn is_editable(self) -> bool {
        matches!(self, Self::Created | Self::Confirmed)
    }

    /// Whether SAP has fulfilled the order (delivered or billed): its lines are then facts
    /// and can no longer be rejected, changed or removed.
    pub fn is_fulfilled(self) -> bool {
        matches!(self, Self::Delivered | Self::Billed)
    }

    /// Applies a status SAP reports (`delivered` or `billed`): the new status, or
    /// [`StatusReport::AlreadyThere`] when the order has it or has passed it (a repeated or
    /// late report), or why it cannot apply (a cancelled or voided order; a status SAP does
    /// not report).
    pub fn apply_report(self, reported: OrderStatus) -> Result<StatusReport, TransitionError> {
        use OrderStatus::*;
        let refused = TransitionError {
            from: self,
            to: reported,
        };
        match (self, reported) {
            (from, to) if from == to && matches!(to, Delivered | Billed) => {
                Ok(StatusReport::AlreadyThere)
            }
            (Billed, Delivered) => Ok(StatusReport::AlreadyThere),
            (Created | Confirmed | Shipped, Delivered | Billed) | (Delivered, Billed) => {
                Ok(StatusReport::Applied(reported))
            }
            _ => Err(refused),
        }
    }

    /// Whether the state machine allows `self → to`.
    pub fn can_move_to(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (Created, Confirmed)
                | (Confirmed, Shipped)
                | (Shipped, Delivered)
                | (Delivered, Billed)
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
    fn the_happy_path_runs_from_created_to_billed() {
        let mut s = Created;
        for next in [Confirmed, Shipped, Delivered, Billed] {
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
    fn sap_reports_apply_once_skip_our_own_steps_and_never_revive_an_ended_order() {
        use super::StatusReport::*;
        assert_eq!(Created.apply_report(Delivered), Ok(Applied(Delivered)));
        assert_eq!(Confirmed.apply_report(Billed), Ok(Applied(Billed)));
        assert_eq!(Delivered.apply_report(Billed), Ok(Applied(Billed)));
        assert_eq!(Delivered.apply_report(Delivered), Ok(AlreadyThere));
        assert_eq!(Billed.apply_report(Billed), Ok(AlreadyThere));
        assert_eq!(Billed.apply_report(Delivered), Ok(AlreadyThere));
        for ended in [Cancelled, Voided] {
            assert!(ended.apply_report(Delivered).is_err(), "{ended}");
            assert!(ended.apply_report(Billed).is_err(), "{ended}");
        }
        assert!(
            Created.apply_report(Shipped).is_err(),
            "SAP reports only delivered and billed"
        );
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in OrderStatus::ALL {
            assert_eq!(s.as_str().parse::<OrderStatus>().unwrap(), s);
        }
        assert!("archived".parse::<OrderStatus>().is_err());
    }
}
