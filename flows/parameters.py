"""What a run of the pipeline or of one stage is asked for, in the shape users ask it: a recipe by name (or file),
`KEY=VALUE` overrides exactly as the CLI's `--set`, and, for the rare run that needs it, a whole recipe.

These types are the deployments' run form. Their JSON Schema lets the Prefect server refuse an unknown recipe name, an
unknown override key or a value of the wrong type before a run exists (see infimmr_core.override_schema); what the
schema cannot see is refused when the flow resolves the recipe, by the CLI's own code, with the key in the message.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import Field, WithJsonSchema

from infimmr_core.config import Recipe
from infimmr_core.override_schema import override_item_schema
from infimmr_core.recipes import RecipeError, builtin_recipes, load_recipe, override_recipe, recipe_yaml

BUILTIN_RECIPES = tuple(builtin_recipes())
# The form shows a choice: a dropdown of the built-in recipes, or a recipe file's path.
RecipeName = Annotated[
    Literal[BUILTIN_RECIPES],  # type: ignore[valid-type]
    WithJsonSchema({"title": "built-in", "type": "string", "enum": list(BUILTIN_RECIPES)}),
]
RecipeFile = Annotated[str, WithJsonSchema({
    "title": "recipe file", "type": "string", "pattern": r"\.ya?ml$",
    "description": "A YAML recipe (.yaml): a path on the machine that runs the flow, or an s3:// or file:// URI.",
}), Field(pattern=r"\.ya?ml$")]
RecipeChoice = Union[RecipeName, RecipeFile]
Override = Annotated[str, WithJsonSchema({
    **override_item_schema(Recipe),
    "description": "`KEY=VALUE`, as `infimmr run --set`: a dotted key (phases by number, list items by index) and "
                   "a YAML value, e.g. `phases.2.learning_rate=1e-6`.",
})]

RECIPE_ARTIFACT = "recipe"  # the resolved recipe, as a Prefect artifact of the run


def resolve_recipe(recipe_name: str, overrides: tuple[str, ...] | list[str], recipe: Recipe | None) -> Recipe:
    """The recipe a run uses: `recipe` when given, else the built-in recipe or file `recipe_name`; then the
    overrides in order. Raises RecipeError naming the key, like the CLI."""
    if recipe is not None:
        return override_recipe(recipe, overrides)
    if recipe_name.startswith("s3://"):
        with tempfile.TemporaryDirectory() as folder:
            return load_recipe(_download(recipe_name, Path(folder)), overrides)
    return load_recipe(recipe_name.removeprefix("file://"), overrides)


def _download(uri: str, folder: Path) -> str:
    """A recipe file from S3 (boto3's own configuration: AWS_ENDPOINT_URL, credentials), as a local path: a worker
    anywhere can read the recipe from the bucket that holds its data."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    path = folder / Path(key).name
    try:
        boto3.client("s3").download_file(bucket, key, str(path))
    except (BotoCoreError, ClientError) as err:
        raise RecipeError(f"recipe {uri}: cannot read it: {err}") from err
    return str(path)


def record_recipe(recipe: Recipe) -> None:
    """Show the resolved recipe on the run's page (and keep it with the run): what ran, every default spelled out."""
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(
        key=RECIPE_ARTIFACT, markdown=f"```yaml\n{recipe_yaml(recipe)}```",
        description=f"The recipe this run used ({recipe.name}), fully resolved.",
    )
