"""``sdeploy finetune``: class-per-folder image datasets and the training recipe."""
