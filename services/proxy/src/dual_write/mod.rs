//! Dual write (phase 2) and its durability: the outcome table ([`outcome`]), order numbers
//! named on creates ([`numbers`]), changes written to SAP and then the order service ([`change`]), the durable replay log and idempotency records
//! ([`store`]), where idempotency keys live, locally or shared by replicas ([`keys`]), the worker that lands every logged follow-up ([`replay`]), and the shadow
//! comparison of reads ([`shadow`]).

pub mod change;
pub mod keys;
pub mod numbers;
pub mod outcome;
pub mod replay;
pub mod shadow;
pub mod store;
