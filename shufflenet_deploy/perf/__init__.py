"""How fast and how big: ``sdeploy bench`` (bench, its worker process and its plot) and ``sdeploy profile``."""
