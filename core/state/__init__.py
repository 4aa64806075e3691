"""What a live node keeps on disk between processes: its saved state, the HALT flag and the command hand-over."""
