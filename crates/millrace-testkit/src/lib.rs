//! millrace-testkit
