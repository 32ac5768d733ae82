//! voxide
