//! The card reader: PC/SC access to My Number cards (JPKI application only).
