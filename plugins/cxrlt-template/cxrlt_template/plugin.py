"""The module the ``cxrlt`` entry point names. cxrlt imports it at start-up, so keep it cheap:
register lazy ``"package.module:attr"`` targets, imported only when an entry is used.

One worked example per hook; keep the hooks you need and delete the others with their modules.
What each target receives and must provide: cxrlt's plugin guide (docs/plugins.md), and
``cxrlt/hookspecs.py``. Rename the entries (``my-...``) to the names users will write.
"""

from cxrlt import hookimpl


@hookimpl
def register_losses(register):
    register(
        "my-loss",
        "cxrlt_template.loss:MyLoss",
        summary="Template example: Poly-1, BCE + epsilon * (1 - p_t) (Leng et al., ICLR 2022).",
        paper="Leng et al., ICLR 2022",
    )


@hookimpl
def register_samplers(register):
    register(
        "my-sampler",
        "cxrlt_template.sampler:MySampler",
        summary="Template example: images with a finding repeat times per epoch, others once.",
    )


@hookimpl
def register_backbones(register):
    register(
        "my-backbone",
        "cxrlt_template.backbone:MyBackbone",
        summary="Template example: depth 3x3 convolutions, mean-pooled to width features.",
    )


@hookimpl
def register_heads(register):
    register(
        "my-head",
        "cxrlt_template.head:MyHead",
        summary="Template example: two linear layers with a ReLU between them.",
    )


@hookimpl
def register_post(register):
    register(
        "my-step",
        "cxrlt_template.step:MyStep",
        summary="Template example: post-hoc logit adjustment, z - tau * logit(prior).",
        paper="Menon et al., ICLR 2021",
    )


@hookimpl
def register_calibrators(register):
    register(
        "my-calibrator",
        "cxrlt_template.calibrator:MyCalibrator",
        summary="Template example: sigmoid(z / T), T the grid value of lowest log-loss.",
    )


@hookimpl
def register_thresholds(register):
    register(
        "my-threshold",
        "cxrlt_template.threshold:MyThreshold",
        summary="Template example: per class, the (1 - fpr) quantile of the negatives.",
    )


@hookimpl
def register_datasets(register):
    register(
        "my-dataset",
        "cxrlt_template.dataset:my_dataset",
        summary="Template example: labels.csv with ChestX-ray14's 'Finding Labels' column.",
    )


@hookimpl
def register_commands(register):
    register(
        "my-command",
        "cxrlt_template.command:count_labels",
        summary="Template example: each class's image count in a data set, rarest first.",
    )


@hookimpl
def register_image_text_models(register):
    register(
        "my-clip",
        "cxrlt_template.image_text:MyImageTextModel",
        summary="Template example: intensity histograms and bags of words in one random space.",
    )


@hookimpl
def register_recipes(register):
    register(
        "my-recipe",
        "cxrlt_template:my-recipe.toml",
        summary="Template example: run options with the source of each value.",
    )


@hookimpl
def register_loggers(register):
    register(
        "my-logger",
        "cxrlt_template.logger:JsonLinesTracker",
        summary="Template example: each epoch's values as one JSON line.",
    )


@hookimpl
def register_executors(register):
    register(
        "my-executor",
        "cxrlt_template.executor:MyExecutor",
        summary="Template example: the cells one after another, a pause after each that ran.",
    )
