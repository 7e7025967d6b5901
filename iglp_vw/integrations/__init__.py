"""Adapters to the tools IGL-P users already run (coba; Open Bandit Pipeline reads
:func:`iglp_vw.evaluate.events_frame`'s arrays directly)."""
