"""What the demo apps need: ``sdeploy bundle``, golden vectors for their tests, and the web demo's server."""
