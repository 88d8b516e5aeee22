"""Serve both flows from this machine (a single GPU box): `python deployments/serve.py`, then trigger runs from the
Prefect UI; the run form is the recipe."""

from prefect import serve

from infimmr.flows.pipeline import infimmr_pipeline, infimmr_stage

if __name__ == "__main__":
    serve(
        infimmr_pipeline.to_deployment(name="pipeline"),
        infimmr_stage.to_deployment(name="stage"),
    )
