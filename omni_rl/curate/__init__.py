"""Data curation that needs a model: hard-sample mining and preference-pair synthesis (above the judge)."""
