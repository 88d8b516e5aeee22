"""The `base` stage: a supervised warm-up that turns the recipe's base model into the curriculum's starting model
(see `config.WarmupConfig`). One job per module: `targets` (worked solutions as chats), `schedule` (which tasks train
in a step), `vision` (the vision pre-warm), `stage` (the loop, the dev checks and the artifact)."""
