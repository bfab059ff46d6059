//! SAP emulator (work in progress).
