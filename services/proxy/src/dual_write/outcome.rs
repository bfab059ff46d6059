//! The dual-write outcome table of `ARCHITECTURE.md`, as code, in one place.
//!
//! [`decide`] is a pure function from what each side did (and the route's policy) to what the
//! client gets and what must happen next. Every row of the table is one match arm below; the
//! caller (`sales_orders`) only gathers the two results and carries the decision out.
//!
//! | SAP | order service | client gets | next |
//! |---|---|---|---|
//! | ok | ok | SAP's answer, byte for byte | link SAP's number to the new order |
//! | ok | fails / times out / rejects | SAP's answer | durable replay of the create (parked at once when retrying cannot help) |
//! | rejects (4xx) | ok | SAP's error, unchanged | void the new order |
//! | rejects (4xx) | fails | SAP's error, unchanged | if the create may have landed (timeout): create-idempotently-then-void it |
//! | unavailable | ok, `strict` | OData 502/504 (or SAP's own 5xx error) | void the new order |
//! | unavailable | ok, `store-and-forward` | 201, legacy-shaped body from the new order | durable replay of the SAP create (look up, then create) |
//! | unavailable | fails | OData 502/504 (or SAP's own 5xx error) | if the create may have landed: create-idempotently-then-void it |
//! | silent (may still commit under our number) | ok, `strict` | OData 504/502 | decide once SAP can no longer commit: keep and link if SAP holds the number, else void |
//! | silent | ok, `store-and-forward` | 201, legacy-shaped body from the new order | durable replay of the SAP create under the same number (SAP refuses a second) |
//! | silent | fails | OData 504/502 | decide once SAP can no longer commit: SAP holds it → create in the order service, else compensate |

use crate::routing::routes::SapUnavailablePolicy;

/// What SAP did with the create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SapSide {
    /// 2xx: SAP took the order (the number, if its answer carried one).
    Created {
        /// SAP's `SalesOrder`.
        sales_order: Option<String>,
    },
    /// 4xx: SAP refused it.
    Rejected,
    /// 5xx, timeout, refused connection, open breaker: SAP did not (knowingly) take it.
    Unavailable {
        /// SAP answered (5xx) rather than staying silent: its error body goes to the client.
        answered: bool,
        /// Silence was a timeout (504) rather than a broken or refused connection (502).
        timed_out: bool,
    },
    /// SAP went silent after the request was sent (timeout, connection broken) and a read of
    /// the number the create named did not find the order: SAP may still be working on it.
    Silent {
        /// The call timed out (else the connection broke).
        timed_out: bool,
    },
}

/// What the order service did with the create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewSide {
    /// It stored the order.
    Created {
        /// The new order's id.
        order_id: String,
    },
    /// It did not (or we do not know).
    Failed {
        /// Whether trying again can succeed (false: 4xx, or untranslatable input).
        retryable: bool,
        /// Whether the order may have been stored anyway (timeout, broken connection).
        ambiguous: bool,
    },
}

/// What the client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// SAP's answer exactly as SAP sent it.
    SapAnswer,
    /// 201 with a legacy-shaped entity built from the new order.
    LegacyShaped,
    /// An OData gateway error (502, or 504 after a timeout).
    GatewayError {
        /// 504 rather than 502.
        timed_out: bool,
    },
}

/// Work the decision requires after (or, when durable, before) answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUp {
    /// Link SAP's number to the new order (replayed if the link fails).
    LinkSapOrderNumber,
    /// Durably log the order-service create for replay; `park` when retrying cannot help.
    ReplayOrderServiceCreate {
        /// Park at once (the order service refused the translated order).
        park: bool,
    },
    /// Durably log a void of the new order (compensation).
    VoidNewOrder,
    /// Durably log "create idempotently, then void": the create may have landed unseen.
    CompensateUnknownCreate,
    /// Durably log the SAP create for replay (store-and-forward).
    ReplaySapCreate,
    /// Decide a create SAP went silent on once SAP can no longer commit it (by reading its
    /// number then).
    ResolveSilentSap,
}

/// The four outcome classes counted in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeClass {
    /// Both systems took the order.
    BothOk,
    /// Only SAP took it (the new side is replayed).
    SapOnly,
    /// Only the order service took it (compensated or forwarded to SAP later).
    NewOnly,
    /// Neither took it.
    BothFailed,
}

impl OutcomeClass {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeClass::BothOk => "both_ok",
            OutcomeClass::SapOnly => "sap_only",
            OutcomeClass::NewOnly => "new_only",
            OutcomeClass::BothFailed => "both_failed",
        }
    }
}

/// The decision for one dual write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The table row (log label).
    pub row: &'static str,
    /// Outcome class (metric label).
    pub class: OutcomeClass,
    /// What the client gets.
    pub reply: Reply,
    /// What happens next.
    pub follow_ups: Vec<FollowUp>,
}

/// The outcome table.
pub fn decide(sap: &SapSide, new: &NewSide, policy: SapUnavailablePolicy) -> Decision {
    use FollowUp::*;
    use OutcomeClass::*;
    let d = |row, class, reply, follow_ups: &[FollowUp]| Decision {
        row,
        class,
        reply,
        follow_ups: follow_ups.to_vec(),
    };
    let unavailable_reply = |answered: bool, timed_out: bool| {
        if answered {
            Reply::SapAnswer
        } else {
            Reply::GatewayError { timed_out }
        }
    };
    match (sap, new) {
        (SapSide::Created { .. }, NewSide::Created { .. }) => d(
            "sap_ok_new_ok",
            BothOk,
            Reply::SapAnswer,
            &[LinkSapOrderNumber],
        ),
        (SapSide::Created { .. }, NewSide::Failed { retryable, .. }) => d(
            "sap_ok_new_failed",
            SapOnly,
            Reply::SapAnswer,
            &[ReplayOrderServiceCreate { park: !retryable }],
        ),
        (SapSide::Rejected, NewSide::Created { .. }) => d(
            "sap_rejected_new_ok",
            NewOnly,
            Reply::SapAnswer,
            &[VoidNewOrder],
        ),
        (SapSide::Rejected, NewSide::Failed { ambiguous, .. }) => d(
            "sap_rejected_new_failed",
            BothFailed,
            Reply::SapAnswer,
            if *ambiguous {
                &[CompensateUnknownCreate]
            } else {
                &[]
            },
        ),
        (
            SapSide::Unavailable {
                answered,
                timed_out,
            },
            NewSide::Created { .. },
        ) => match policy {
            SapUnavailablePolicy::Strict => d(
                "sap_unavailable_new_ok_strict",
                NewOnly,
                unavailable_reply(*answered, *timed_out),
                &[VoidNewOrder],
            ),
            SapUnavailablePolicy::StoreAndForward => d(
                "sap_unavailable_new_ok_store_and_forward",
                NewOnly,
                Reply::LegacyShaped,
                &[ReplaySapCreate],
            ),
        },
        (SapSide::Silent { timed_out }, NewSide::Created { .. }) => match policy {
            SapUnavailablePolicy::Strict => d(
                "sap_silent_new_ok_strict",
                NewOnly,
                Reply::GatewayError {
                    timed_out: *timed_out,
                },
                &[ResolveSilentSap],
            ),
            SapUnavailablePolicy::StoreAndForward => d(
                "sap_silent_new_ok_store_and_forward",
                NewOnly,
                Reply::LegacyShaped,
                &[ReplaySapCreate],
            ),
        },
        (SapSide::Silent { timed_out }, NewSide::Failed { .. }) => d(
            "sap_silent_new_failed",
            BothFailed,
            Reply::GatewayError {
                timed_out: *timed_out,
            },
            &[ResolveSilentSap],
        ),
        (
            SapSide::Unavailable {
                answered,
                timed_out,
            },
            NewSide::Failed { ambiguous, .. },
        ) => d(
            "sap_unavailable_new_failed",
            BothFailed,
            unavailable_reply(*answered, *timed_out),
            if *ambiguous {
                &[CompensateUnknownCreate]
            } else {
                &[]
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SapUnavailablePolicy::*;

    fn created() -> SapSide {
        SapSide::Created {
            sales_order: Some("1000001".into()),
        }
    }
    fn new_ok() -> NewSide {
        NewSide::Created {
            order_id: "o".into(),
        }
    }
    fn new_down(ambiguous: bool) -> NewSide {
        NewSide::Failed {
            retryable: true,
            ambiguous,
        }
    }
    fn sap_down() -> SapSide {
        SapSide::Unavailable {
            answered: false,
            timed_out: true,
        }
    }

    #[test]
    fn both_ok_answers_with_sap_and_links_the_number() {
        let d = decide(&created(), &new_ok(), Strict);
        assert_eq!(d.class, OutcomeClass::BothOk);
        assert_eq!(d.reply, Reply::SapAnswer);
        assert_eq!(d.follow_ups, [FollowUp::LinkSapOrderNumber]);
    }

    #[test]
    fn sap_ok_and_order_service_down_answers_with_sap_and_replays_the_create() {
        let d = decide(&created(), &new_down(true), StoreAndForward);
        assert_eq!(d.class, OutcomeClass::SapOnly);
        assert_eq!(d.reply, Reply::SapAnswer);
        assert_eq!(
            d.follow_ups,
            [FollowUp::ReplayOrderServiceCreate { park: false }]
        );
    }

    #[test]
    fn sap_ok_and_order_service_refusing_the_order_parks_the_replay_for_an_operator() {
        let refused = NewSide::Failed {
            retryable: false,
            ambiguous: false,
        };
        let d = decide(&created(), &refused, Strict);
        assert_eq!(
            d.follow_ups,
            [FollowUp::ReplayOrderServiceCreate { park: true }]
        );
    }

    #[test]
    fn sap_rejection_passes_sap_error_on_and_voids_the_new_order() {
        let d = decide(&SapSide::Rejected, &new_ok(), StoreAndForward);
        assert_eq!(d.class, OutcomeClass::NewOnly);
        assert_eq!(d.reply, Reply::SapAnswer);
        assert_eq!(d.follow_ups, [FollowUp::VoidNewOrder]);
    }

    #[test]
    fn sap_unavailable_under_strict_answers_a_gateway_error_and_voids() {
        let d = decide(&sap_down(), &new_ok(), Strict);
        assert_eq!(d.reply, Reply::GatewayError { timed_out: true });
        assert_eq!(d.follow_ups, [FollowUp::VoidNewOrder]);
    }

    #[test]
    fn sap_unavailable_under_store_and_forward_answers_201_and_replays_to_sap() {
        let d = decide(&sap_down(), &new_ok(), StoreAndForward);
        assert_eq!(d.reply, Reply::LegacyShaped);
        assert_eq!(d.follow_ups, [FollowUp::ReplaySapCreate]);
    }

    #[test]
    fn both_failing_answers_an_error_and_leaves_nothing_behind() {
        for policy in [Strict, StoreAndForward] {
            let d = decide(&sap_down(), &new_down(false), policy);
            assert_eq!(d.class, OutcomeClass::BothFailed);
            assert!(matches!(d.reply, Reply::GatewayError { .. }));
            assert!(d.follow_ups.is_empty());
            let d = decide(&sap_down(), &new_down(true), policy);
            assert_eq!(d.follow_ups, [FollowUp::CompensateUnknownCreate]);
            let d = decide(&SapSide::Rejected, &new_down(true), policy);
            assert_eq!(d.reply, Reply::SapAnswer);
            assert_eq!(d.follow_ups, [FollowUp::CompensateUnknownCreate]);
        }
    }

    #[test]
    fn a_5xx_answer_from_sap_is_passed_on_rather_than_replaced() {
        let answered = SapSide::Unavailable {
            answered: true,
            timed_out: false,
        };
        assert_eq!(decide(&answered, &new_ok(), Strict).reply, Reply::SapAnswer);
    }

    #[test]
    fn a_silent_sap_under_our_number_is_decided_later_never_voided_at_once() {
        let silent = SapSide::Silent { timed_out: true };
        let strict = decide(&silent, &new_ok(), Strict);
        assert_eq!(strict.reply, Reply::GatewayError { timed_out: true });
        assert_eq!(strict.follow_ups, vec![FollowUp::ResolveSilentSap]);
        let forward = decide(&silent, &new_ok(), StoreAndForward);
        assert_eq!(forward.reply, Reply::LegacyShaped);
        assert_eq!(forward.follow_ups, vec![FollowUp::ReplaySapCreate]);
        for ambiguous in [true, false] {
            let both = decide(&silent, &new_down(ambiguous), Strict);
            assert_eq!(both.class, OutcomeClass::BothFailed);
            assert_eq!(both.follow_ups, vec![FollowUp::ResolveSilentSap]);
        }
    }
}
