"""``loes explain``: saliency maps of a Loes model from ``monai.visualize`` (``saliency``), how
well a map points at lesion masks beside baselines and the randomised-weights test
(``checks``), the scans chosen and prepared (``scans``), the maps and the rows they make
(``maps``), the figures (``figures``), the summary (``summary``), the loop and its files
(``explanations``), what the command prints (``console``) and the HTML page (``page``)."""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "explanations": ["EXPLANATIONS_FILE", "PAGE_FILE", "SUMMARY_FILE", "explain"],
        "saliency": ["SALIENCY_METHODS", "SaliencySettings"],
    },
)
