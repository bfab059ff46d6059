//! order-domain (being written).
