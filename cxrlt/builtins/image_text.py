"""Built-in image-text models for zero-shot classification: two chest X-ray CLIP models by
name, and every OpenCLIP name through a name source."""

from cxrlt.hookspecs import hookimpl

_OPEN_CLIP = "cxrlt.zero_shot.openclip:open_clip_model"


@hookimpl
def register_image_text_models(register):
    register(
        "whyxrayclip",
        _OPEN_CLIP,
        summary="WhyXrayCLIP, an OpenCLIP ViT-L/14 tuned on chest X-rays and textbook "
        "knowledge (hf-hub:yyupenn/whyxrayclip, MIT licence); the CXR-LT 2026 Task 2 "
        "development winner's model.",
        bound={"model_name": "hf-hub:yyupenn/whyxrayclip"},
        paper="Yang et al., A Textbook Remedy for Domain Shifts, NeurIPS 2024",
    )
    register(
        "biomedclip",
        _OPEN_CLIP,
        summary="BiomedCLIP, a ViT-B/16 and PubMedBERT CLIP trained on 15M PubMed figure-caption "
        "pairs (hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224, MIT licence).",
        bound={"model_name": "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"},
        paper="Zhang et al., BiomedCLIP, arXiv 2303.00915, 2023",
    )
    register.source(
        "cxrlt.zero_shot.openclip:open_clip_name",
        names="cxrlt.zero_shot.openclip:open_clip_names",
        note="Any OpenCLIP architecture also resolves (ViT-B-32:pretrained=TAG or =FILE), as do "
        "hf-hub:ORG/REPO and local-dir:FOLDER (needs open-clip-torch).",
    )
