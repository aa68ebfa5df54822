//! Whole-guard tests: see the detector modules for per-detector ones.
