"""Judging a run: probe accuracy (unlearning/retained), FID, nudity, MIA, and the reports."""
