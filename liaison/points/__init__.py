"""履职积分: the county's points standard, points derived from recorded events, offline activities
approved along a review chain, audited adjustments, the per-deputy ledger, 公示 and annual grades."""
