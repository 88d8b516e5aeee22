"""Serve every deployment from this machine (a single GPU box), the same as `infimmr deploy --serve`:
`python deployments/serve.py`, then trigger runs from the Prefect UI; the pipeline's run form is the recipe."""

from infimmr.flows.deploy import DeployOptions, serve_all

if __name__ == "__main__":
    serve_all(DeployOptions(cron=None))
