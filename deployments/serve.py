"""Serve every deployment from this machine (a single GPU box), the same as `infimmr deploy --serve`:
`python deployments/serve.py`, then trigger runs from the Prefect UI: pick a recipe, add `KEY=VALUE` overrides.
No schedule: `infimmr deploy --serve --schedule-recipe NAME` adds one."""

from infimmr.flows.deploy import DeployOptions, serve_all

if __name__ == "__main__":
    serve_all(DeployOptions())
