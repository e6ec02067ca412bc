"""Live statistics (KPIs) computed from the core's records and snapshots; pure."""
