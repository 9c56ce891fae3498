"""A test app for ``freeim_events`` workers: records every online/offline signal in Redis."""
